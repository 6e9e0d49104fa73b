// Stands in for optional modules autobahn requires inside try/catch
// (`when`, `fs`): requiring it throws, so autobahn falls back (native
// Promises, no trace file).
throw new Error("not bundled in the Broker browser client");
