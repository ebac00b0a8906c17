// Record → replay → compare: each scenario runs live while recording, then replays in a child and must observe the same.
#include "../support/reprise_test.hpp"

#include <reprise/io/file_world.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <numeric>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

/// The number after `key` in `log` (the first occurrence), or -1.
long long logged_number(const std::string& log, std::string_view key) {
    auto at = log.find(key);
    if (at == std::string::npos)
        return -1;
    return std::strtoll(log.c_str() + at + key.size(), nullptr, 10);
}

std::size_t count_of(const std::string& log, std::string_view what) {
    std::size_t n = 0;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1))
        ++n;
    return n;
}

Options seeded_options(std::uint64_t seed) {
    Options o;
    o.seed = seed;
    o.node_name = "replay-test";
    return o;
}

/// Keeps the loop from polling for `d` of real time, as a slow handler would. Only
/// the recording does this: replay gets the late ticks from the trace.
void stall_the_loop_while_recording(Duration d) {
    if (!Runtime::current()->replaying())
        ::usleep(static_cast<useconds_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

// --- scenarios --------------------------------------------------------------------------

/// Workers take items from a channel and hand results to main, yielding and
/// sleeping at random: who handles what depends on the live loop's timing.
int tasks_channels_and_yields(std::string& log) {
    constexpr int workers_n = 12;
    constexpr int items_n = 400;
    Channel<int> work(4);
    Channel<std::pair<int, int>> results(3);
    std::vector<Task<int>> workers;
    for (int w = 0; w < workers_n; ++w)
        workers.push_back(spawn(fmt::format("worker-{}", w), [&, w] {
            int handled = 0;
            for (;;) {
                auto item = work.recv();
                if (!item.ok())
                    break;
                switch (random_below(4)) {
                case 0: yield(); break;
                case 1: (void)sleep_for(Duration(static_cast<std::int64_t>(random_below(400'000)))); break;
                default: break;
                }
                if (!results.send({w, *item * 3}).ok())
                    break;
                ++handled;
            }
            return handled;
        }));
    auto producer = spawn("producer", [&] {
        for (int i = 0; i < items_n; ++i) {
            if (!work.send(i).ok())
                return;
            if (i % 7 == 0)
                yield();
        }
        work.close();
    });
    long long sum = 0;
    for (int i = 0; i < items_n; ++i) {
        auto r = must(results.recv(generous), "results.recv");
        log += fmt::format("{}:{} ", r.first, r.second);
        sum += r.second;
    }
    must(producer.join(generous), "join producer");
    int handled = 0;
    log += "\nhandled:";
    for (auto& t : workers) {
        int n = must(t.join(generous), "join worker");
        handled += n;
        log += fmt::format(" {}", n);
    }
    log += fmt::format("\nsum={} handled={}\n", sum, handled);
    return 0;
}

/// Sleeps, one-shot and periodic timers, a timer reset and a cancel; a stalled
/// loop makes a periodic timer fall behind.
int sleeps_and_timers(std::string& log) {
    const Instant t0 = now();
    auto since = [&] { return (now() - t0).count(); };

    // Equal deadlines fire in creation order, whatever order the waiters came in.
    Timer a, b, c;
    for (Timer* t : {&a, &b, &c})
        t->start_at(t0 + 8ms);
    std::string fire_order;
    auto wait_for = [&](Timer& t, char name) {
        return spawn(std::string("waiter-") + name, [&t, &fire_order, name] {
            if (t.wait(generous).ok())
                fire_order += name;
        });
    };
    auto wc = wait_for(c, 'c');
    auto wa = wait_for(a, 'a');
    auto wb = wait_for(b, 'b');

    // Sleepers wake in deadline order.
    std::string sleep_order;
    std::vector<Task<void>> sleepers;
    for (int ms : {3, 1, 2})
        sleepers.push_back(spawn(fmt::format("sleeper-{}", ms), [&, ms] {
            if (sleep_for(std::chrono::milliseconds(ms)).ok())
                sleep_order += fmt::format("s{}@{} ", ms, since());
        }));

    Timer periodic;
    periodic.start(4ms, 4ms);
    int fell_behind = 0;
    std::uint64_t fires_total = 0;
    for (int i = 0; i < 10; ++i) {
        std::uint64_t fires = must(periodic.wait(generous), "periodic.wait");
        fires_total += fires;
        fell_behind += fires > 1 ? 1 : 0;
        log += fmt::format("periodic {} fires={} at={} next={}\n", i, fires, since(),
                           (periodic.deadline() - t0).count());
        if (i == 3 || i == 6)
            stall_the_loop_while_recording(15ms);
    }
    periodic.cancel();
    must(wa.join(generous), "join a");
    must(wb.join(generous), "join b");
    must(wc.join(generous), "join c");
    for (auto& s : sleepers)
        must(s.join(generous), "join sleeper");

    // Resetting a one-shot timer moves its deadline (from far away, so that it
    // cannot have fired already when a loaded machine runs the sleep late).
    Timer r;
    r.start(1h);
    must(sleep_for(3ms), "sleep");
    const auto reset_at = since();
    r.reset(10ms);
    must(r.wait(generous), "reset timer wait");
    log += fmt::format("reset at={} fired at={}\n", reset_at, since());

    // A cancelled timer wakes its waiter with closed.
    Timer x;
    x.start(1h);
    auto xw = spawn("waiter-x", [&] { return outcome_name(x.wait(generous)); });
    must(sleep_for(1ms), "sleep");
    x.cancel();
    log += fmt::format("cancelled timer: {}\n", must(xw.join(generous), "join waiter-x"));

    log += fmt::format("fire order={}\nsleep order={}\nfires_total={} fell_behind={}\n", fire_order, sleep_order,
                       fires_total, fell_behind);
    return 0;
}

/// Two seconds of sleeps with a heartbeat timer beside them.
int long_sleeps(std::string& log) {
    const Instant t0 = now();
    Timer heartbeat;
    heartbeat.start(100ms, 100ms);
    auto beats = spawn("heartbeat", [&] {
        std::uint64_t n = 0;
        while (auto fires = heartbeat.wait())
            n += *fires;
        return n;
    });
    for (int i = 0; i < 8; ++i) {
        must(sleep_for(250ms), "sleep");
        log += fmt::format("slept {} at={}\n", i, (now() - t0).count());
    }
    heartbeat.cancel();
    log += fmt::format("beats={}\n", must(beats.join(generous), "join heartbeat"));
    return 0;
}

/// A server that gathers its replies: it answers every complete line it holds, asks
/// try_read (which never waits) whether the client sent more, and flushes only when it
/// has nothing more to answer. Clients send requests in random pieces and read the
/// replies with peek and discard. Without a read that does not wait, the server would
/// block holding replies the client waits for.
int gather_then_flush(std::string& log) {
    constexpr int clients_n = 3;
    constexpr int requests_n = 30;
    Listener listener = must(listen(Address::loopback(0)), "listen");
    auto server = spawn("server", [&] {
        std::vector<Task<void>> handlers;
        for (int i = 0; i < clients_n; ++i) {
            Connection c = must(listener.accept(generous), "accept");
            handlers.push_back(spawn(fmt::format("handler-{}", i), [&log, i, conn = std::move(c)]() mutable {
                std::string held, replies;
                std::size_t flushes = 0, answered = 0;
                for (;;) {
                    auto finished = [&](const Error& why) {
                        log += fmt::format("handler {}: {} answered in {} flushes, then {}\n", i, answered, flushes,
                                           why.message());
                    };
                    auto more = conn.try_read();
                    if (!more.ok())
                        return finished(more.error());
                    held += *more;
                    for (std::size_t nl; (nl = held.find('\n')) != std::string::npos; held.erase(0, nl + 1)) {
                        replies += fmt::format("ok {}\n", held.substr(0, nl));
                        ++answered;
                    }
                    if (!more->empty())
                        continue;  // the client sent more: answer it before flushing
                    if (!replies.empty()) {
                        must(conn.write(replies), "write");
                        replies.clear();
                        ++flushes;
                    }
                    auto got = conn.read_some(4096, generous);  // nothing buffered: wait
                    if (!got.ok())
                        return finished(got.error());
                    held += *got;
                }
            }));
        }
        for (auto& h : handlers)
            must(h.join(generous), "join handler");
    });
    std::vector<Task<void>> clients;
    for (int i = 0; i < clients_n; ++i)
        clients.push_back(spawn(fmt::format("client-{}", i), [&, i] {
            Connection conn = must(connect(Address::loopback(listener.port()), generous), "connect");
            std::string requests;
            for (int r = 0; r < requests_n; ++r)
                requests += fmt::format("c{}-r{}\n", i, r);
            for (std::size_t at = 0; at < requests.size();) {
                std::size_t n = std::min<std::size_t>(1 + random_below(40), requests.size() - at);
                must(conn.write(std::string_view(requests).substr(at, n)), "write");
                at += n;
                if (random_below(3) == 0)
                    must(sleep_for(Duration(static_cast<std::int64_t>(random_below(500'000)))), "sleep");
            }
            // Replies read in place: peek at what is buffered, discard the lines taken.
            int replies = 0;
            std::size_t discarded = 0;
            while (replies < requests_n) {
                std::string_view in = conn.peek();
                std::size_t lines_end = in.rfind('\n');
                if (lines_end == std::string_view::npos) {
                    must(conn.wait_buffered(in.size() + 1, generous), "wait_buffered");
                    continue;
                }
                replies += static_cast<int>(std::count(in.begin(), in.begin() + lines_end + 1, '\n'));
                discarded += conn.discard(lines_end + 1);
            }
            log += fmt::format("client {}: {} replies, {} bytes discarded\n", i, replies, discarded);
            conn.shutdown();
        }));
    for (auto& c : clients)
        must(c.join(generous), "join client");
    must(server.join(generous), "join server");
    return 0;
}

/// wait() on a timer that is not armed returns closed at once; wait_until_fired() waits
/// for another task to arm it and for its fire, and returns closed when it is cancelled.
int timer_armed_later(std::string& log) {
    const Instant t0 = now();
    Timer idle;
    auto early = idle.wait();
    log += fmt::format("wait on a never-armed timer: {}\n", early.ok() ? "fired" : early.error().message());
    auto watcher = spawn("watcher", [&] {
        std::string seen;
        for (;;) {
            auto fires = idle.wait_until_fired(generous);
            if (!fires.ok())
                return seen + "then " + fires.error().message();
            seen += fmt::format("fired {} at={} ", *fires, (now() - t0).count());
        }
    });
    must(sleep_for(5ms), "sleep");
    idle.start(3ms);
    must(sleep_for(10ms), "sleep");
    idle.start(2ms);
    must(sleep_for(10ms), "sleep");
    idle.cancel();
    log += fmt::format("watcher: {}\n", must(watcher.join(generous), "join watcher"));
    return 0;
}

/// Clients of an in-process echo server read with short deadlines while the
/// server answers after random delays: some deadlines fire first, and the late
/// answer is what the next read sees.
int timeouts_racing_reads(std::string& log) {
    constexpr int clients_n = 4;
    constexpr int rounds = 20;
    Listener listener = must(listen(Address::loopback(0)), "listen");
    auto server = spawn("server", [&] {
        for (int i = 0; i < clients_n; ++i) {
            auto c = listener.accept(generous);
            if (!c.ok())
                return;
            spawn(fmt::format("handler-{}", i), [conn = std::move(*c)]() mutable {
                static constexpr Duration delays[] = {0ms, 4ms, 8ms};
                for (;;) {
                    auto line = conn.read_until("\n", 256, generous);
                    if (!line.ok())
                        return;
                    if (!sleep_for(delays[random_below(3)]).ok())
                        return;
                    if (!conn.write(*line).ok())
                        return;
                }
            });
        }
    });
    std::vector<Task<std::string>> clients;
    for (int k = 0; k < clients_n; ++k)
        clients.push_back(spawn(fmt::format("client-{}", k), [&, k] {
            static constexpr Duration deadlines[] = {1ms, 4ms, 40ms};
            Connection conn = must(connect(Address::loopback(listener.port()), generous), "connect");
            std::string seen;
            for (int r = 0; r < rounds; ++r) {
                must(conn.write(fmt::format("c{}r{}\n", k, r)), "write");
                auto got = conn.read_until("\n", 256, deadlines[random_below(3)]);
                seen += got.ok() ? *got : fmt::format("[{}]\n", errc_name(got.code()));
            }
            conn.shutdown();
            for (;;) {
                auto got = conn.read_some(256, generous);
                if (!got.ok()) {
                    seen += fmt::format("[then {}]", errc_name(got.code()));
                    break;
                }
                seen += "late:" + *got;
            }
            return seen;
        }));
    for (auto& c : clients)
        log += must(c.join(generous), "join client") + "\n";
    must(server.join(generous), "join server");
    return 0;
}

/// Tasks blocked in every kind of wait are cancelled in a random order.
int cancellation_of_blocked_tasks(std::string& log) {
    Channel<int> channel(1);
    Mutex mutex;
    must(mutex.lock(), "lock");
    Condition condition;
    Timer timer;
    timer.start(1h);
    Event event;
    Listener listener = must(listen(Address::loopback(0)), "listen");
    Connection client = must(connect(Address::loopback(listener.port()), generous), "connect");
    Connection server = must(listener.accept(generous), "accept");

    struct Blocked {
        std::string name;
        Task<std::string> task;
    };
    std::vector<Blocked> blocked;
    auto add = [&](std::string name, auto fn) { blocked.push_back({name, spawn(name, std::move(fn))}); };
    add("recv", [&] { return outcome_name(channel.recv()); });
    add("lock", [&] { return outcome_name(mutex.lock()); });
    add("condition", [&] { return outcome_name(condition.wait()); });
    add("timer", [&] { return outcome_name(timer.wait()); });
    add("event", [&] { return outcome_name(event.wait()); });
    add("sleep", [] { return outcome_name(sleep_for(1h)); });
    add("accept", [&] { return outcome_name(listener.accept()); });
    add("read", [&] { return outcome_name(client.read_some(64)); });
    add("read-until", [&] { return outcome_name(server.read_until("\n", 64)); });
    add("join", [] {
        auto inner = spawn("inner", [] { (void)sleep_for(1h); });
        auto r = inner.join();
        inner.cancel();
        return outcome_name(r);
    });
    // Blocking work on a pool thread that lasts until every task was cancelled
    // (replay does not run it).
    static std::atomic<bool> release_offload;
    release_offload = false;
    add("offload", [] {
        return outcome_name(offload([] {
            for (int ms = 0; ms < 10'000 && !release_offload.load(); ++ms)
                ::usleep(1000);
            return 42;
        }));
    });
    add("sleep-with-deadline", [] {
        Event never;
        return outcome_name(never.wait(Deadline(1h)));
    });
    must(sleep_for(2ms), "sleep");

    std::vector<std::size_t> order(blocked.size());
    std::iota(order.begin(), order.end(), 0);
    for (std::size_t i = order.size(); i > 1; --i)
        std::swap(order[i - 1], order[random_below(i)]);
    for (std::size_t i : order) {
        blocked[i].task.cancel();
        log += blocked[i].name + " ";
        if (random_below(2) == 0)
            must(sleep_for(1ms), "sleep");
        else
            yield();
    }
    log += "\n";
    release_offload = true;
    for (auto& b : blocked)
        log += fmt::format("{}: {}\n", b.name, must(b.task.join(generous), "join"));
    // A task cancelled before it first ran gets cancelled from its first wait.
    auto early = spawn("early", [] { return outcome_name(sleep_for(1h)); });
    early.cancel();
    log += fmt::format("early: {}\n", must(early.join(generous), "join early"));
    mutex.unlock();
    return 0;
}

/// 20 clients send 3000 bytes each in random pieces; the server echoes what each
/// small read_some returns; clients read back in random pieces.
int tcp_echo_20_connections(std::string& log) {
    constexpr int conns = 20;
    constexpr std::size_t bytes = 3000;
    Listener listener = must(listen(Address::loopback(0)), "listen");
    std::vector<std::string> server_reads(conns);
    WaitGroup handlers;
    auto acceptor = spawn("acceptor", [&] {
        for (int i = 0; i < conns; ++i) {
            auto c = listener.accept(generous);
            if (!c.ok())
                return;
            handlers.add();
            spawn(fmt::format("echo-{}", i), [&, i, conn = std::move(*c)]() mutable {
                for (;;) {
                    auto got = conn.read_some(1 + random_below(97), generous);
                    if (!got.ok()) {
                        server_reads[i] += fmt::format("[{}]", errc_name(got.code()));
                        break;
                    }
                    server_reads[i] += fmt::format("{},", got->size());
                    if (!conn.write(*got).ok())
                        break;
                }
                handlers.done();
            });
        }
    });
    std::vector<Task<std::string>> clients;
    for (int k = 0; k < conns; ++k)
        clients.push_back(spawn(fmt::format("client-{}", k), [&, k] {
            Connection conn = must(connect(Address::loopback(listener.port()), generous), "connect");
            const std::string sent = pattern(static_cast<std::uint64_t>(k) * bytes, bytes);
            for (std::size_t at = 0; at < bytes;) {
                std::size_t n = std::min<std::size_t>(bytes - at, 1 + random_below(400));
                must(conn.write(std::string_view(sent).substr(at, n)), "write");
                at += n;
                if (random_below(3) == 0)
                    yield();
                else if (random_below(3) == 0)
                    must(sleep_for(Duration(static_cast<std::int64_t>(random_below(1'000'000)))), "sleep");
            }
            std::string back;
            std::string pieces;
            while (back.size() < bytes) {
                std::size_t n = std::min<std::size_t>(bytes - back.size(), 1 + random_below(500));
                back += must(conn.read_exact(n, generous), "read_exact");
                pieces += fmt::format("{},", n);
            }
            conn.shutdown();
            auto tail = conn.read_some(16, generous);
            return fmt::format("client {}: {} after {} then {}", k, back == sent ? "echoed" : "MISMATCH", pieces,
                               outcome_name(tail));
        }));
    for (auto& c : clients)
        log += must(c.join(generous), "join client") + "\n";
    must(handlers.wait(generous), "wait for handlers");
    must(acceptor.join(generous), "join acceptor");
    for (int i = 0; i < conns; ++i)
        log += fmt::format("server {}: {}\n", i, server_reads[i]);
    return 0;
}

/// Everything a program can ask for synchronously, and the seeded PRNG.
int synchronous_inputs(std::string& log) {
    log += fmt::format("seed={}\n", Runtime::current()->seed());
    // One draw per statement: the order of a call's arguments is unspecified.
    const std::uint64_t r1 = random_u64();
    const std::uint64_t r2 = random_u64();
    const std::uint64_t r3 = random_u64();
    const std::uint64_t below = random_below(1000);
    const std::int64_t between = random_between(-5, 5);
    log += fmt::format("random_u64: {} {} {}\nrandom_below(1000)={} random_between(-5,5)={}\n", r1, r2, r3, below,
                       between);
    const Instant p1 = precise_now();
    const Instant p2 = precise_now();
    log += fmt::format("precise_now: {} {} ordered={}\n", p1.time_since_epoch().count(), p2.time_since_epoch().count(),
                       p2 >= p1);
    std::string hex;
    for (unsigned char ch : must(secure_random(16), "secure_random"))
        hex += fmt::format("{:02x}", ch);
    log += fmt::format("secure_random={}\n", hex);
    log += fmt::format("env={}\n", env("REPRISE_REPLAY_TEST_ENV").value_or("(unset)"));
    log += fmt::format("env unset={}\n", env("REPRISE_REPLAY_TEST_NEVER_SET").value_or("(unset)"));
    // Values that differ in every process: replay must hand back the recorded ones.
    const int x = input<int>("x", [] { return static_cast<int>(::getpid()); });
    const auto host = input<std::string>("host", [] { return fmt::format("host-of-pid-{}", ::getpid()); });
    const auto list = input<std::vector<std::int64_t>>("list", [] {
        return std::vector<std::int64_t>{::getpid(), -1, 1LL << 40};
    });
    log += fmt::format("x={} host={} list={},{},{}\n", x, host, list[0], list[1], list[2]);
    must(sleep_for(1ms), "sleep");
    const Instant p3 = precise_now();
    const std::uint64_t r4 = random_u64();
    log += fmt::format("after a tick: precise_now={} random_u64={} now={} wall_now={}\n", p3.time_since_epoch().count(),
                       r4, now().time_since_epoch().count(), wall_now().time_since_epoch().count());
    return 0;
}

/// Offloaded jobs and file reads; the files are gone by the time replay runs.
Scenario offload_and_files(const std::string& dir) {
    return [dir](std::string& log) {
        auto content = read_file(dir + "/data.txt");
        log += fmt::format("data.txt: {} \"{}\"\n", outcome_name(content), content.ok() ? *content : "");
        log += fmt::format("missing.txt: {}\n", outcome_name(read_file(dir + "/missing.txt")));
        log += fmt::format("offload int: {}\n", must(offload([] { return static_cast<int>(::getpid()); }), "offload"));
        log += fmt::format("offload string: {}\n",
                           must(offload([] { return fmt::format("job-in-pid-{}", ::getpid()); }), "offload"));
        try {
            (void)offload([]() -> int { throw std::runtime_error("boom from the pool"); });
            log += "offload throw: nothing thrown\n";
        } catch (const std::exception& e) {
            log += fmt::format("offload throw: {}\n", e.what());
        }
        log += fmt::format("write_file: {}\n", outcome_name(write_file(dir + "/written.txt", "written while recording")));
        auto exists = file_exists(dir + "/written.txt");
        log += fmt::format("written.txt exists: {}\n", exists.ok() && *exists);
        return 0;
    };
}

/// A listener on port 0, a connection to it, and the addresses both ends see.
int accept_and_connect_on_port_0(std::string& log) {
    Listener listener = must(listen(Address::loopback(0)), "listen");
    log += fmt::format("port={}\nlistener={}\n", listener.port(), listener.local_address().to_string());
    Connection client = must(connect(Address::loopback(listener.port()), generous), "connect");
    Connection server = must(listener.accept(generous), "accept");
    log += fmt::format("client local={} peer={}\n", client.local_address().to_string(),
                       client.peer_address().to_string());
    log += fmt::format("server local={} peer={}\n", server.local_address().to_string(),
                       server.peer_address().to_string());
    log += fmt::format("accepted peer is the client: {}\n", server.peer_address() == client.local_address());
    log += fmt::format("listen on the same port again: {}\n", outcome_name(listen(Address::loopback(listener.port()))));
    std::uint16_t closed_port = 0;
    {
        Listener gone = must(listen(Address::loopback(0)), "listen");
        closed_port = gone.port();
    }
    log += fmt::format("connect to a closed port: {}\n",
                       outcome_name(connect(Address::loopback(closed_port), generous)));
    must(client.write("ping"), "write");
    log += fmt::format("server read: {}\n", must(server.read_exact(4, generous), "read"));
    must(server.write("pong"), "write");
    log += fmt::format("client read: {}\n", must(client.read_exact(4, generous), "read"));
    return 0;
}

} // namespace

TEST_CASE("many tasks passing items through channels replay with the same interleaving") {
    const std::uint64_t seed = test_seed("channels");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", tasks_channels_and_yields, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    REQUIRE(logged_number(log, "sum=") == 3LL * 399 * 400 / 2);
    REQUIRE(logged_number(log, "handled=") == 400);
    REQUIRE(trip.recorded.stats.fibers_spawned == 1 + 12 + 1);
}

TEST_CASE("sleeps, timers and a periodic timer that fell behind replay with the same times and counts") {
    const std::uint64_t seed = test_seed("timers");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", sleeps_and_timers, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    INFO(log);
    REQUIRE_THAT(log, Catch::Contains("fire order=abc\n"));
    REQUIRE(log.find("s1@") < log.find("s2@"));
    REQUIRE(log.find("s2@") < log.find("s3@"));
    REQUIRE_THAT(log, Catch::Contains("cancelled timer: closed"));
    // The stalled loop made the periodic timer count missed periods.
    REQUIRE(logged_number(log, "fell_behind=") >= 1);
    REQUIRE(logged_number(log, "reset at=") >= 3'000'000);
    REQUIRE(logged_number(log, "fired at=") >= logged_number(log, "reset at=") + 10'000'000);
}

TEST_CASE("a server that gathers replies with try_read, and clients reading with peek and discard, replay") {
    const std::uint64_t seed = test_seed("gather");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", gather_then_flush, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    INFO(log);
    for (int i = 0; i < 3; ++i) {
        REQUIRE_THAT(log, Catch::Contains(fmt::format("handler {}: 30 answered in", i)));
        REQUIRE_THAT(log, Catch::Contains(fmt::format("client {}: 30 replies", i)));
    }
    REQUIRE(count_of(log, "flushes, then end of stream") == 3);
}

TEST_CASE("wait_until_fired waits for a timer armed later, and wait on an unarmed timer returns closed") {
    const std::uint64_t seed = test_seed("armed-later");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", timer_armed_later, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    INFO(log);
    REQUIRE_THAT(log, Catch::Contains("wait on a never-armed timer: closed"));
    REQUIRE(count_of(log, "fired 1 at=") == 2);
    REQUIRE(logged_number(log, "fired 1 at=") >= 8'000'000);
    REQUIRE_THAT(log, Catch::EndsWith("then closed\n"));
}

TEST_CASE("two seconds of recorded sleeps replay in a fraction of the time") {
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", long_sleeps);
    const Replay& rep = trip.replayed;
    INFO(rep.child.err);
    REQUIRE_THAT(trip.recorded.log, Catch::Contains("slept 7 at="));
    REQUIRE(logged_number(trip.recorded.log, "slept 7 at=") >= 2'000'000'000);
    REQUIRE(logged_number(trip.recorded.log, "beats=") >= 19);
    // Virtual time is the recorded span; the replay itself did not wait for it.
    REQUIRE(rep.summary_virtual_s >= 2.0);
    REQUIRE(rep.summary_wall_s < rep.summary_virtual_s * 0.5);
    REQUIRE(rep.run_wall_ns < 1'000'000'000);
}

TEST_CASE("a warped replay never waits on the clock and a paced one does") {
    TempDir dir;
    Recording rec = record(dir / "trace", [](std::string& log) {
        for (int i = 0; i < 3; ++i) {
            sleep_for(std::chrono::milliseconds(20)).value();
            log += "slept\n";
        }
        return 0;
    });
    REQUIRE(rec.stats.clock_waits >= 1);  // live: the loop blocked while sleeping
    const Scenario same = [](std::string& log) {
        for (int i = 0; i < 3; ++i) {
            sleep_for(std::chrono::milliseconds(20)).value();
            log += "slept\n";
        }
        return 0;
    };
    Replay warped = replay(rec.trace_path, same);
    REQUIRE(warped.finished);
    REQUIRE(warped.stats.clock_waits == 0);
    Options paced;
    paced.replay_speed = 1;
    Replay at_pace = replay(rec.trace_path, same, paced);
    REQUIRE(at_pace.finished);
    REQUIRE(at_pace.log == rec.log);
    REQUIRE(at_pace.stats.clock_waits >= 1);  // --speed=1 sleeps to the recorded pace
}

TEST_CASE("reads racing their deadlines replay with the same timeouts and late answers") {
    const std::uint64_t seed = test_seed("timeouts");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", timeouts_racing_reads, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    INFO(log);
    // Some deadlines fired first, and not all of them did.
    REQUIRE(count_of(log, "[timed_out]") >= 1);
    REQUIRE(count_of(log, "[timed_out]") < 4 * 20);
    REQUIRE(count_of(log, "[then eof]") == 4);
}

TEST_CASE("cancelling tasks blocked in every kind of wait replays with the same outcomes") {
    const std::uint64_t seed = test_seed("cancellation");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", cancellation_of_blocked_tasks, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    INFO(log);
    for (const char* name : {"recv", "lock", "condition", "timer", "event", "sleep", "accept", "read", "read-until",
                             "join", "offload", "sleep-with-deadline", "early"})
        REQUIRE_THAT(log, Catch::Contains(fmt::format("\n{}: cancelled\n", name)));
}

TEST_CASE("an echo server with 20 connections and partial reads replays read for read") {
    const std::uint64_t seed = test_seed("echo20");
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", tcp_echo_20_connections, seeded_options(seed));
    const std::string& log = trip.recorded.log;
    INFO(log);
    REQUIRE(count_of(log, ": echoed after") == 20);
    REQUIRE(count_of(log, "then eof") == 20);
    REQUIRE(count_of(log, "[eof]") == 20);
}

TEST_CASE("precise_now, secure_random, random_u64, env and app inputs replay the recorded values") {
    const std::uint64_t seed = test_seed("inputs");
    TempDir dir;
    REQUIRE(::setenv("REPRISE_REPLAY_TEST_ENV", "as-recorded", 1) == 0);
    ::unsetenv("REPRISE_REPLAY_TEST_NEVER_SET");
    auto trip = record_and_replay(dir / "trace", synchronous_inputs, seeded_options(seed), [] {
        ::setenv("REPRISE_REPLAY_TEST_ENV", "changed-before-replay", 1);
        ::setenv("REPRISE_REPLAY_TEST_NEVER_SET", "set-before-replay", 1);
    });
    ::unsetenv("REPRISE_REPLAY_TEST_ENV");
    const std::string& log = trip.recorded.log;
    INFO(log);
    REQUIRE_THAT(log, Catch::Contains(fmt::format("seed={}\n", seed)));
    REQUIRE_THAT(log, Catch::Contains("env=as-recorded\n"));
    REQUIRE_THAT(log, Catch::Contains("env unset=(unset)\n"));
    REQUIRE_THAT(log, Catch::Contains(fmt::format("x={} ", ::getpid())));
    REQUIRE_THAT(log, Catch::Contains("ordered=true"));

    // The PRNG is a function of the seed alone, which the trace header keeps.
    Runtime again(seeded_options(seed));
    std::uint64_t first = 0;
    REQUIRE(again.run([&] {
                first = random_u64();
                return 0;
            }) == 0);
    REQUIRE_THAT(log, Catch::Contains(fmt::format("random_u64: {} ", first)));
}

TEST_CASE("offloaded results and read_file contents replay after the files are gone") {
    TempDir dir;
    REQUIRE(spit(dir / "data.txt", "contents at recording time\n"));
    const Scenario scenario = offload_and_files(dir.path());
    Recording rec = record(dir / "trace", scenario);
    INFO(rec.log);
    REQUIRE(rec.trace.saw_end);
    REQUIRE_THAT(rec.log, Catch::Contains("data.txt: ok \"contents at recording time\n\""));
    REQUIRE_THAT(rec.log, Catch::Contains("missing.txt: not_found"));
    REQUIRE_THAT(rec.log, Catch::Contains("offload throw: boom from the pool"));
    REQUIRE_THAT(rec.log, Catch::Contains("written.txt exists: true"));
    REQUIRE(::unlink((dir / "data.txt").c_str()) == 0);
    REQUIRE(::unlink((dir / "written.txt").c_str()) == 0);

    Replay rep = replay(dir / "trace", scenario);
    INFO(rep.child.describe());
    REQUIRE(rep.child.exited_with(0));
    REQUIRE(rep.finished);
    INFO(first_difference(rec.log, rep.log));
    REQUIRE(rep.log == rec.log);
    REQUIRE(rep.summary_events == rec.trace.records);
    // Replay performs no output: the file the recording wrote is not written again.
    REQUIRE_FALSE(file_is_there(dir / "written.txt"));
    REQUIRE_FALSE(file_is_there(dir / "data.txt"));
}

TEST_CASE("a listener on port 0 replays with the recorded port and addresses") {
    TempDir dir;
    auto trip = record_and_replay(dir / "trace", accept_and_connect_on_port_0);
    const std::string& log = trip.recorded.log;
    INFO(log);
    const long long port = logged_number(log, "port=");
    REQUIRE(port > 0);
    REQUIRE(logged_number(trip.replayed.log, "port=") == port);
    REQUIRE_THAT(log, Catch::Contains("client local=127.0.0.1:"));
    REQUIRE_THAT(log, Catch::Contains(fmt::format("peer=127.0.0.1:{}\n", port)));
    REQUIRE_THAT(log, Catch::Contains("accepted peer is the client: true"));
    REQUIRE_THAT(log, Catch::Contains("listen on the same port again: address_in_use"));
    REQUIRE_THAT(log, Catch::Contains("server read: ping\nclient read: pong\n"));
}

// Loop time before the first tick comes from the run's first Tick record (an
// earlier runtime read the live clock in run() without recording it, so replay
// saw the header's construction-time clock instead).
TEST_CASE("now() and wall_now() before the first tick replay the recorded values") {
    TempDir dir;
    const Scenario scenario = [](std::string& log) {
        log += fmt::format("now={} wall_now={}\n", now().time_since_epoch().count(),
                           wall_now().time_since_epoch().count());
        Timer t;
        t.start(5ms);
        log += fmt::format("timer deadline={}\n", t.deadline().time_since_epoch().count());
        must(t.wait(generous), "timer wait");
        return 0;
    };
    record_and_replay(dir / "trace", scenario);
}

TEST_CASE("a recording split into segment files replays across them in order") {
    TempDir dir;
    const Scenario scenario = [](std::string& log) {
        // About 3 MiB crosses loopback, so the trace needs several 1 MiB segments.
        Listener listener = must(listen(Address::loopback(0)), "listen");
        auto server = spawn("server", [&] {
            Connection conn = must(listener.accept(generous), "accept");
            std::size_t got = 0;
            while (got < 3 * 1024 * 1024)
                got += must(conn.read_some(64 * 1024, generous), "server read").size();
            return got;
        });
        Connection client = must(connect(listener.local_address(), generous), "connect");
        std::string block(64 * 1024, 'x');
        for (int i = 0; i < 48; ++i) {
            block[0] = static_cast<char>('a' + i % 26);
            must(client.write(block, generous), "write");
        }
        log += fmt::format("server got {} bytes\n", server.join().value());
        return 0;
    };
    Options options;
    options.record_segment_bytes = 1024 * 1024;  // of stored bytes: what lands on disk
    options.record_compress = false;  // 'x' blocks would compress into one segment
    const std::string path = dir / "trace";
    record_and_replay(path, scenario, options);
    REQUIRE_FALSE(std::filesystem::exists(path));  // only PATH.0, PATH.1, ...
    REQUIRE(std::filesystem::exists(path + ".0"));
    REQUIRE(std::filesystem::exists(path + ".2"));
    // Every segment keeps within the limit: a new one starts before a chunk would pass it.
    for (int k = 0; std::filesystem::exists(path + "." + std::to_string(k)); ++k) {
        INFO("segment " << k);
        REQUIRE(std::filesystem::file_size(path + "." + std::to_string(k)) <= options.record_segment_bytes);
    }
    // A segment lost from the middle: the trace reads as damaged where the gap is, naming the
    // missing segment and the one after it, not as a recording cut off there.
    std::filesystem::rename(path + ".1", dir / "elsewhere");
    TraceFacts facts = read_trace(path, true);
    REQUIRE(facts.error.has_value());
    CHECK_THAT(facts.error->message,
               Catch::Contains("the next segment, " + path + ".1, is missing, though segment 2 of the same recording (" +
                               path + ".2) exists"));
}

// A crashing program: the crash hook writes the buffered records before the
// process dies, and the replay reaches the same crash at the same event.
TEST_CASE("a recorded program that aborts leaves its last events in the trace and replays to the same crash") {
    TempDir dir;
    const std::string path = dir / "trace";
    const auto crashing = [](Options options) {
        Runtime rt(std::move(options));
        return rt.run([] {
            for (int i = 0; i < 3; ++i)
                sleep_for(2ms).value();
            const auto last = precise_now();  // the last input before the crash
            std::fprintf(stderr, "last precise_now %lld\n", static_cast<long long>(last.time_since_epoch().count()));
            std::abort();
            return 0;
        });
    };
    Options rec;
    rec.record_path = path;
    ChildResult recorded = run_in_child([&] { return crashing(rec); });
    INFO(recorded.describe());
    REQUIRE(recorded.died_by(SIGABRT));
    TraceFacts facts = read_trace(path, true);
    REQUIRE(facts.opened);
    REQUIRE_FALSE(facts.saw_end);
    REQUIRE_FALSE(facts.error.has_value());
    // The records of the moments before the crash made it: three sleeps' ticks and
    // the precise clock read right before abort().
    REQUIRE_FALSE(facts.all.empty());
    const trace::Record& last = facts.all.back().get();
    REQUIRE(trace::is<trace::Input>(last));
    REQUIRE(std::get<trace::Input>(last).input == trace::InputKind::precise_clock);

    Options rep;
    rep.replay_path = path;
    ChildResult replayed = run_in_child([&] { return crashing(rep); });
    INFO(replayed.describe());
    REQUIRE(replayed.died_by(SIGABRT));
    // The same value of the last input shows the replay reached the same point.
    const auto line = [](const std::string& err) { return err.substr(err.find("last precise_now")); };
    REQUIRE(line(replayed.err).substr(0, line(replayed.err).find('\n')) ==
            line(recorded.err).substr(0, line(recorded.err).find('\n')));
}

namespace {

/// A file world that logs every step and can fail the n-th fsync: what a simulated
/// disk or a fault-injecting test puts under a program (Options::file_world).
class LoggingFiles final : public FileWorld {
public:
    explicit LoggingFiles(int fail_sync_number = 0) : fail_sync_number_(fail_sync_number) {}
    std::vector<std::string> steps() {
        std::lock_guard lock(mutex_);
        return steps_;
    }

    Result<FileToken> open(const std::string& path, OpenMode mode) override {
        log("open " + base(path));
        return real_->open(path, mode);
    }
    void close(FileToken file) noexcept override {
        log("close");
        real_->close(file);
    }
    Result<std::string> read(FileToken file, std::uint64_t offset, std::size_t max_bytes) override {
        log("read");
        return real_->read(file, offset, max_bytes);
    }
    Result<void> write(FileToken file, std::uint64_t offset, std::string_view bytes) override {
        log("write");
        return real_->write(file, offset, bytes);
    }
    Result<void> append(FileToken file, std::string_view bytes) override {
        log("append");
        return real_->append(file, bytes);
    }
    Result<void> sync(FileToken file) override {
        const int n = ++syncs_;
        log(n == fail_sync_number_ ? "sync (fails: EIO)" : "sync");
        if (n == fail_sync_number_)
            return Error{Errc::io, EIO};
        return real_->sync(file);
    }
    Result<std::uint64_t> size(FileToken file) override {
        log("size");
        return real_->size(file);
    }
    Result<void> truncate(FileToken file, std::uint64_t size) override {
        log("truncate");
        return real_->truncate(file, size);
    }
    Result<void> rename(const std::string& from, const std::string& to) override {
        log("rename " + base(from) + " " + base(to));
        return real_->rename(from, to);
    }
    Result<void> unlink(const std::string& path) override {
        log("unlink " + base(path));
        return real_->unlink(path);
    }
    Result<void> sync_directory(const std::string& path) override {
        log("sync_directory of " + base(path));
        return real_->sync_directory(path);
    }
    Result<bool> exists(const std::string& path) override {
        log("exists " + base(path));
        return real_->exists(path);
    }
    Result<void> make_directories(const std::string& path) override {
        log("make_directories " + base(path));
        return real_->make_directories(path);
    }

private:
    static std::string base(const std::string& path) { return path.substr(path.rfind('/') + 1); }
    void log(std::string step) {
        std::lock_guard lock(mutex_);
        steps_.push_back(std::move(step));
    }
    std::shared_ptr<FileWorld> real_ = real_file_world();
    int fail_sync_number_;
    std::atomic<int> syncs_{0};
    std::mutex mutex_;
    std::vector<std::string> steps_;
};

} // namespace

TEST_CASE("file operations reach the world as typed steps, in order") {
    TempDir dir;
    auto files = std::make_shared<LoggingFiles>();
    Options options;
    options.file_world = files;
    Runtime rt(options);
    const std::string path = dir / "state";
    REQUIRE(rt.run([&] {
        must(write_file_atomic(path, "term=3"), "write_file_atomic");
        REQUIRE(must(read_file(path), "read_file") == "term=3");
        must(remove_file(path), "remove_file");
        return 0;
    }) == 0);
    REQUIRE(files->steps() == std::vector<std::string>{
                                  "open state.tmp", "write", "sync", "close", "rename state.tmp state",
                                  "sync_directory of state",                   // write_file_atomic
                                  "open state", "size", "read", "close",      // read_file
                                  "unlink state",                              // remove_file
                              });
}

TEST_CASE("a failed fsync from the file world is recorded, and replay hands the program the same failure") {
    TempDir dir;
    const std::string path = dir / "vote";
    const Scenario scenario = [path](std::string& log) {
        auto first = write_file_atomic(path, "vote=n1");
        log += fmt::format("first: {}\n", first.ok() ? "ok" : first.error().message());
        auto second = write_file_atomic(path, "vote=n2");
        log += fmt::format("second: {}\n", second.ok() ? "ok" : second.error().message());
        return 0;
    };
    auto files = std::make_shared<LoggingFiles>(1);  // the first fsync fails
    Options options;
    options.file_world = files;
    RoundTrip trip = record_and_replay(dir / "trace", scenario, options);
    REQUIRE_THAT(trip.recorded.log, Catch::StartsWith("first: ") && Catch::Contains("second: ok"));
    REQUIRE_THAT(trip.recorded.log, !Catch::StartsWith("first: ok"));
    REQUIRE(slurp(dir / "vote") == "vote=n2");
}
