// Must NOT type-check (tests/test_packaging_js.py): proves tsc really reads broker.d.ts.
import { connect } from "@broker/client";

connect({ url: "ws://127.0.0.1:8080/ws" }).subscribe("public.orders.", () => {}, { match: "glob" });
