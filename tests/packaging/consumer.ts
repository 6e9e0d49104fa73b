// A project's use of @broker/client, type-checked against the installed package's broker.d.ts
// (tests/test_packaging_js.py). Every annotation is one the declarations must satisfy.
import {
  backoffDelay,
  connect,
  type BrokerClient,
  type BrokerError,
  type EventMeta,
  type ResumePosition,
  type State,
  type Subscription,
} from "@broker/client";

interface Order {
  id: number;
}

const client: BrokerClient = connect({
  url: "ws://127.0.0.1:8080/ws",
  realm: "app",
  getToken: async () => "eyJ...",
  lpUrl: false,
  backoff: { base: 500, cap: 10_000 },
});
const offState: () => void = client.on("state", (state: State) => console.log(state.toUpperCase()));
client.on("error", (error: BrokerError) => console.log(error.uri ?? error.message));

const saved: ResumePosition = { epoch: "e1", cursor: 41 };
const sub: Subscription = client.subscribe<Order>(
  "public.orders.",
  (order: Order, meta: EventMeta) => console.log(order.id, meta.topic, meta.position?.seq, meta.recovered),
  { match: "prefix", recover: true, from: saved, onUnrecoverable: (info) => console.log(info.reason, info.cursor) },
);
const position: ResumePosition | null = sub.position;
const delay: number = backoffDelay(3, { base: 1000, cap: 30_000, random: Math.random });
console.log(position, delay, client.transport);
sub.unsubscribe();
offState();
client.close();
