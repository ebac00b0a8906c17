// reprise-kv's server: a Redis-protocol (RESP2) string key-value store running on the reprise runtime.
#pragma once

#include "resp.hpp"
#include <reprise/runtime/reprise.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::kv {

/// Every bound of the server, with its default. `--help` and docs/porting.md list them.
struct ServerLimits {
    /// Bulk length, multibulk count and inline line length (see resp::Limits).
    resp::Limits resp{};
    /// Unparsed input one client may have buffered: a request larger than this is a
    /// protocol error. 32 MiB holds a few maximal bulks (MSET k1 <8 MiB> k2 <8 MiB> ...).
    std::size_t max_client_input_bytes = 32 * 1024 * 1024;
    /// Clients connected at once (Redis's maxclients default); more are refused
    /// with "-ERR max number of clients reached".
    std::size_t max_clients = 10000;
    /// Expired keys the active expiry removes before it lets clients run again.
    std::size_t expire_batch_max = 10000;
    /// Reply bytes gathered from a pipelined batch before they are handed to the
    /// connection (replies to one batch are written with one write below this).
    std::size_t reply_flush_bytes = 256 * 1024;
};

/// How the server starts.
struct Config {
    std::string bind = "127.0.0.1";
    std::uint16_t port = 6379;
    ServerLimits limits{};
    /// --requirepass-file: the file holding the clients' password (read by main_entry as a
    /// secret: never in the trace). Empty: no password.
    std::string requirepass_file;
    /// The password clients must AUTH with (empty: none).
    std::string requirepass;
    /// Protected mode: with no password, only a loopback --bind is served (--protected-mode=no lifts it).
    bool protected_mode = true;
};

/// Counters shown by INFO (they are the server's own state, so they replay too).
struct Stats {
    std::uint64_t connections_received = 0;
    std::uint64_t connections_rejected = 0;
    std::uint64_t commands_processed = 0;
    std::uint64_t error_replies = 0;
    std::uint64_t expired_keys = 0;
    std::uint64_t keyspace_hits = 0;
    std::uint64_t keyspace_misses = 0;
    std::uint64_t net_input_bytes = 0;
    std::uint64_t net_output_bytes = 0;
    std::uint64_t connected_clients = 0;
};

class Server;

/// Parses reprise-kv's own arguments (argv[0] first). Returns an error message, or
/// an empty string on success.
std::string parse_args(const std::vector<std::string>& args, Config& config);
/// reprise-kv's usage text (its options and limits).
std::string usage_text();
/// reprise-kv's own flags ("--port", ...), for ProgramInfo::flags.
std::vector<std::string> flag_names();

/// A server on the current runtime. Create it in a task, listen(), then serve()
/// until that task is cancelled; serve() stops and joins its client tasks itself.
class Server {
public:
    explicit Server(Config config);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Binds the listening socket. Errors: address_in_use, invalid_argument, io.
    Result<void> listen();
    /// The bound port (after listen()).
    std::uint16_t port() const;
    /// Accepts clients until the calling task is cancelled (a graceful stop) or the
    /// listener fails; then closes the listener and cancels the clients and the expiry
    /// task, which end on their own (they share the server's state, so the Server may
    /// be destroyed before they are gone). Returns 0 after a graceful stop, 1 on a
    /// listener error.
    int serve();

    Stats stats() const noexcept;
    /// Keys in the keyspace (expired keys not yet removed included).
    std::size_t key_count() const noexcept;
    /// Called for each key the active expiry removes (tests log it).
    void on_active_expire(std::function<void(std::string_view key)> hook);

    struct State;

private:
    std::shared_ptr<State> state_;  ///< shared with the server's tasks, which may outlive serve()
};

/// The program: parses `ctx.args`, listens, prints "listening P" and serves.
int main_entry(MainContext& ctx);
/// reprise-kv as a program the runtime hosts (run_main, or one of several in a process).
ProgramEntry program();

} // namespace reprise::kv
