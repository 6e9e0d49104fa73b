// autobahn requires cbor unconditionally; Broker's client speaks JSON only.
const unavailable = () => {
  throw new Error("cbor is not bundled in the Broker browser client");
};
module.exports = { encodeAsync: unavailable, decodeFirstSync: unavailable };
