"""The test project's app: one model whose changes are published to ``public.shop.orders.<pk>``."""
