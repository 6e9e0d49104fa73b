"""Orders: a model whose every save and delete is published to ``public.orders.<pk>``."""
