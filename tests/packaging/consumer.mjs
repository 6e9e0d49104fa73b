// A project importing the installed @broker/client as an ES module (tests/test_packaging_js.py).
import * as broker from "@broker/client";

const pkg = (await import("@broker/client/package.json", { with: { type: "json" } })).default;
console.log(
  JSON.stringify({
    name: pkg.name,
    exports: Object.keys(broker).sort(),
    connect: typeof broker.connect,
    ceiling: broker.backoffCeiling(3, { base: 1000, cap: 30000 }),
    longPoll: broker.defaultLongPollUrl("wss://example.test/ws"),
  }),
);
