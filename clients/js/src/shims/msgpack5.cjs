// autobahn requires msgpack5 unconditionally; Broker's client speaks JSON
// only (its serializers option lists just the JSON serializer), so the
// 400 KB of msgpack5 + Buffer polyfills stay out of the bundle.
module.exports = function msgpack5() {
  const unavailable = () => {
    throw new Error("msgpack is not bundled in the Broker browser client");
  };
  return { encode: unavailable, decode: unavailable };
};
