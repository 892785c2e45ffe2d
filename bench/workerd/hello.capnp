# bench:invoke's workerd baseline: one ES-module worker answering 'ok'. The socket address is
# set on the command line (workerd serve hello.capnp --socket-addr http=127.0.0.1:PORT).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .hello) ],
  sockets = [ ( name = "http", address = "127.0.0.1:8080", http = (), service = "main" ) ],
);

const hello :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "hello.js") ],
  compatibilityDate = "2025-01-01",
);
