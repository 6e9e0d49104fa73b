// Stands in for crypto-js (WAMP-CRA) and tweetnacl (WAMP-cryptosign):
// autobahn requires them at load time but uses them only inside those
// authenticators. Browsers authenticate to Broker anonymously or with a
// ticket, so ~100 KiB stays out of the bundle; calling autobahn.auth_cra or
// auth_cryptosign from this bundle fails.
module.exports = {};
