// Starts @vercel/cosmosdb-server over HTTPS on 127.0.0.1 with keep-alive.
// Run by the Go package; arguments: <path to the package dir> <port>.
// Port 0 lets the kernel pick, and the first stdout line reports the port
// actually bound, so the Go side never races for a "free" port.
"use strict";

const [modulePath, portArg] = process.argv.slice(1);

// Stand-in 1.0.1 answers a point read of a missing item in a partitioned
// container with 500 (it dereferences the missing item). Cosmos answers
// 404, and clients branch on that, so answer 404 before the stock handler
// runs. This must happen before the server module loads its route table,
// which captures the handler at load time.
const readDocument = require(`${modulePath}/lib/handler/read-document`);
const partitionHeader = require(`${modulePath}/lib/utils/get-partition-from-header`);
const stockReadDocument = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  if (collection.read()) {
    let key;
    try {
      key = partitionHeader.parsePartitionKey(partitionHeader.default(req), params.docId);
    } catch (err) {
      // Leave malformed headers to the stock handler's own answer.
      return stockReadDocument(account, req, res, params);
    }
    if (!collection.document(params.docId, key).read()) {
      res.statusCode = 404;
      return {
        code: "NotFound",
        message: "Entity with the specified id does not exist in the system.",
      };
    }
  }
  return stockReadDocument(account, req, res, params);
};

const { createHttpsServer } = require(modulePath);

// Without keepAlive the stand-in answers every request with
// "connection: close", and each client call then pays a TLS handshake.
const server = createHttpsServer({ keepAlive: true });

// Node closes idle keep-alive sockets after 5 s by default. Clients keep
// idle connections for longer, so a request written just as Node closes
// the socket fails with a reset. Outliving the clients avoids that race.
server.keepAliveTimeout = 120 * 1000;
server.headersTimeout = 121 * 1000;

server.on("error", (err) => {
  console.error(`cosmos stand-in: ${err.message}`);
  process.exit(1);
});

server.listen(parseInt(portArg, 10) || 0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});

// The Go parent holds our stdin open. When it goes away, even by a crash,
// stdin ends and we exit instead of lingering as an orphan on the port.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
