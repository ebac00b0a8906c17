// reprise-kv's server: keyspace with lazy and timer-driven expiry, RESP sessions, commands, INFO.
#include "kv_server.hpp"

#include "auth.hpp"
#include "flags.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <queue>
#include <span>
#include <unordered_map>
#include <utility>

using namespace std::chrono_literals;

namespace reprise::kv {

namespace {

/// The Redis version INFO reports: the release whose command set and error texts reprise-kv follows.
constexpr std::string_view redis_version = "7.0.0";
constexpr std::size_t initial_input_bytes = 16 * 1024;
/// An emptied input buffer larger than this is freed (the next read starts small again).
constexpr std::size_t release_above_bytes = 1024 * 1024;

struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// One value. Only strings exist, so WRONGTYPE never arises.
struct Entry {
    std::string value;
    /// Loop-time deadline in nanoseconds; 0: the key does not expire.
    std::int64_t expire_ns = 0;
};

/// A pending expiry. It is stale (and skipped) when the key is gone or now holds another deadline.
struct ExpiryItem {
    std::int64_t deadline_ns;
    std::string key;
    bool operator>(const ExpiryItem& other) const noexcept { return deadline_ns > other.deadline_ns; }
};

std::int64_t ns_of(Instant t) { return t.time_since_epoch().count(); }

bool equals_ci(std::string_view a, std::string_view lower) noexcept {
    if (a.size() != lower.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        if (c != lower[i])
            return false;
    }
    return true;
}

} // namespace

/// The keyspace: a hash map of strings with expiry deadlines, and a min-heap of deadlines.
class Keyspace {
public:
    using Map = std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>>;

    /// The live entry of `key`, or null; an expired entry found here is removed (lazy expiry).
    Entry* find(std::string_view key, std::int64_t now_ns) {
        auto it = map_.find(key);
        if (it == map_.end())
            return nullptr;
        if (it->second.expire_ns != 0 && it->second.expire_ns <= now_ns) {
            erase(it);
            ++expired_;
            return nullptr;
        }
        return &it->second;
    }

    /// The entry of `key`, created empty when absent (call find() first for expiry).
    Entry& upsert(std::string_view key) {
        auto it = map_.find(key);
        if (it == map_.end())
            it = map_.emplace(std::string(key), Entry{}).first;
        return it->second;
    }

    bool erase(std::string_view key) {
        auto it = map_.find(key);
        if (it == map_.end())
            return false;
        erase(it);
        return true;
    }

    /// Gives `entry` (of `key`) a deadline; returns true when it became the earliest.
    bool set_expire(Entry& entry, std::string_view key, std::int64_t deadline_ns) {
        REPRISE_ASSERT(deadline_ns != 0);
        if (entry.expire_ns == 0)
            ++with_expiry_;
        entry.expire_ns = deadline_ns;
        if (heap_.size() > 2 * with_expiry_ + 1024)
            rebuild_heap();
        const bool earliest = heap_.empty() || deadline_ns < heap_.top().deadline_ns;
        heap_.push(ExpiryItem{deadline_ns, std::string(key)});
        return earliest;
    }

    void clear_expire(Entry& entry) noexcept {
        if (entry.expire_ns != 0) {
            --with_expiry_;
            entry.expire_ns = 0;
        }
    }

    /// Removes up to `max` keys whose deadline is at or before `now_ns`, calling `removed(key)` for each.
    template <class F>
    std::size_t expire_due(std::int64_t now_ns, std::size_t max, F&& removed) {
        std::size_t n = 0;
        while (!heap_.empty() && heap_.top().deadline_ns <= now_ns && n < max) {
            auto it = map_.find(std::string_view(heap_.top().key));
            if (it != map_.end() && it->second.expire_ns == heap_.top().deadline_ns) {
                removed(std::string_view(it->first));
                erase(it);
                ++expired_;
                ++n;
            }
            heap_.pop();
        }
        return n;
    }

    /// The earliest pending deadline (stale ones included), or 0.
    std::int64_t next_deadline() const noexcept { return heap_.empty() ? 0 : heap_.top().deadline_ns; }

    void flush() {
        map_.clear();
        heap_ = {};
        with_expiry_ = 0;
    }

    std::size_t size() const noexcept { return map_.size(); }
    std::size_t with_expiry() const noexcept { return with_expiry_; }
    /// Keys removed because they expired (lazily or actively), since start.
    std::uint64_t expired() const noexcept { return expired_; }
    void reset_expired() noexcept { expired_ = 0; }

private:
    void erase(Map::iterator it) {
        if (it->second.expire_ns != 0)
            --with_expiry_;
        map_.erase(it);
    }

    /// Drops stale heap items (keys overwritten many times with new deadlines).
    void rebuild_heap() {
        std::vector<ExpiryItem> items;
        items.reserve(with_expiry_);
        for (const auto& [key, entry] : map_)
            if (entry.expire_ns != 0)
                items.push_back(ExpiryItem{entry.expire_ns, key});
        heap_ = std::priority_queue<ExpiryItem, std::vector<ExpiryItem>, std::greater<>>(std::greater<>{},
                                                                                          std::move(items));
    }

    Map map_;
    std::priority_queue<ExpiryItem, std::vector<ExpiryItem>, std::greater<>> heap_;
    std::size_t with_expiry_ = 0;
    std::uint64_t expired_ = 0;
};

/// A connected client.
struct Client {
    std::uint64_t id = 0;
    bool authenticated = false;  ///< sent the right AUTH (only asked for with a password)
    std::string name;
    std::string peer;
};

struct Server::State {
    Config config;
    Listener listener;
    Keyspace keys;
    Stats stats;
    Instant started{};
    std::uint64_t next_client_id = 1;
    std::unordered_map<std::uint64_t, Task<void>> clients;
    Task<void> expiry_task;
    /// The active expiry: the task sleeps on the timer (armed at the earliest deadline)
    /// or, with no deadline pending, on the condition.
    Timer expiry_timer;
    Condition expiry_wake;
    std::function<void(std::string_view)> expire_hook;
    /// A client sent SHUTDOWN: the listener is closed, and serve() ends as after a graceful stop.
    bool shutdown_requested = false;

    /// SHUTDOWN: stop accepting (the accept loop wakes with Errc::closed and ends serve()).
    void request_shutdown(std::uint64_t client_id) {
        if (shutdown_requested)
            return;
        shutdown_requested = true;
        fmt::print("stopping: SHUTDOWN from client {}\n", client_id);
        std::fflush(stdout);
        listener.close();
    }

    /// A new earliest deadline: move the timer (or wake the idle expiry task).
    void deadline_added(std::int64_t deadline_ns) {
        if (expiry_timer.armed()) {
            if (deadline_ns < ns_of(expiry_timer.deadline()))
                expiry_timer.start_at(Instant{Duration{deadline_ns}});
        } else {
            expiry_wake.notify_one();
        }
    }
    void set_expire(Entry& entry, std::string_view key, std::int64_t deadline_ns) {
        if (keys.set_expire(entry, key, deadline_ns))
            deadline_added(deadline_ns);
    }

    void expiry_loop();
    void serve_client(Connection conn, std::uint64_t id);
};

namespace {

/// What one command sees.
struct Ctx {
    Server::State& s;
    Client& client;
    const std::vector<std::string_view>& argv;
    std::string& out;
    std::int64_t now_ns;
    bool quit = false;

    void error(std::string_view text) {
        resp::append_error(out, text);
        ++s.stats.error_replies;
    }
    void ok() { out.append("+OK\r\n", 5); }
    void syntax_error() { error("ERR syntax error"); }
    void not_integer() { error("ERR value is not an integer or out of range"); }
    Entry* lookup(std::string_view key) {
        Entry* e = s.keys.find(key, now_ns);
        if (e != nullptr)
            ++s.stats.keyspace_hits;
        else
            ++s.stats.keyspace_misses;
        return e;
    }
};

using Handler = void (*)(Ctx&);

struct Command {
    std::string_view name;  ///< lowercase, as Redis names it in errors
    int arity;              ///< argc exactly when >= 0, at least -arity when < 0 (Redis's convention)
    Handler handler;
};

void arity_error(Ctx& c, std::string_view name) {
    c.error(fmt::format("ERR wrong number of arguments for '{}' command", name));
}

enum class Unit { seconds, milliseconds };

/// A relative (or, with `absolute`, Unix-time) expiry in `unit` turned into a loop-time
/// deadline. False when it does not fit (Redis: "invalid expire time").
bool to_deadline(Ctx& c, long long amount, Unit unit, bool absolute, std::int64_t& deadline_ns) {
    constexpr long long ns_per_ms = 1'000'000;
    long long ms = amount;
    if (unit == Unit::seconds) {
        if (amount > LLONG_MAX / 1000 || amount < LLONG_MIN / 1000)
            return false;
        ms = amount * 1000;
    }
    if (ms > LLONG_MAX / ns_per_ms || ms < LLONG_MIN / ns_per_ms)
        return false;
    long long ns = ms * ns_per_ms;
    if (absolute) {
        // Unix time to loop time through the tick's wall clock reading (both replay).
        const long long wall_ns = wall_now().time_since_epoch().count();
        if (__builtin_sub_overflow(ns, wall_ns, &ns))
            return false;
    }
    long long deadline = 0;
    if (__builtin_add_overflow(c.now_ns, ns, &deadline))
        return false;
    deadline_ns = deadline <= 0 ? 1 : deadline;  // 0 means "no expiry"; anything <= now is already due
    return true;
}

void cmd_ping(Ctx& c) {
    if (c.argv.size() > 2)
        return arity_error(c, "ping");
    if (c.argv.size() == 2)
        resp::append_bulk(c.out, c.argv[1]);
    else
        c.out.append("+PONG\r\n", 7);
}

void cmd_echo(Ctx& c) { resp::append_bulk(c.out, c.argv[1]); }

void cmd_get(Ctx& c) {
    if (Entry* e = c.lookup(c.argv[1]))
        resp::append_bulk(c.out, e->value);
    else
        resp::append_null(c.out);
}

void cmd_set(Ctx& c) {
    enum : unsigned { nx = 1, xx = 2, get = 4, keepttl = 8, ex = 16, px = 32, exat = 64, pxat = 128 };
    constexpr unsigned any_expire = ex | px | exat | pxat;
    unsigned flags = 0;
    std::string_view expire_arg;
    const auto& a = c.argv;
    for (std::size_t j = 3; j < a.size(); ++j) {
        const bool has_next = j + 1 < a.size();
        const std::string_view opt = a[j];
        auto expire_option = [&](unsigned flag) {
            if ((flags & keepttl) || (flags & any_expire & ~flag) || !has_next)
                return false;
            flags |= flag;
            expire_arg = a[++j];
            return true;
        };
        if (equals_ci(opt, "nx") && !(flags & xx)) {
            flags |= nx;
        } else if (equals_ci(opt, "xx") && !(flags & nx)) {
            flags |= xx;
        } else if (equals_ci(opt, "get")) {
            flags |= get;
        } else if (equals_ci(opt, "keepttl") && !(flags & any_expire)) {
            flags |= keepttl;
        } else if (equals_ci(opt, "ex")) {
            if (!expire_option(ex))
                return c.syntax_error();
        } else if (equals_ci(opt, "px")) {
            if (!expire_option(px))
                return c.syntax_error();
        } else if (equals_ci(opt, "exat")) {
            if (!expire_option(exat))
                return c.syntax_error();
        } else if (equals_ci(opt, "pxat")) {
            if (!expire_option(pxat))
                return c.syntax_error();
        } else {
            return c.syntax_error();
        }
    }
    std::int64_t deadline_ns = 0;
    if (flags & any_expire) {
        long long amount = 0;
        if (!resp::parse_integer(expire_arg, amount))
            return c.not_integer();
        const Unit unit = (flags & (ex | exat)) ? Unit::seconds : Unit::milliseconds;
        if (amount <= 0 || !to_deadline(c, amount, unit, (flags & (exat | pxat)) != 0, deadline_ns))
            return c.error("ERR invalid expire time in 'set' command");
    }
    Entry* old = c.s.keys.find(a[1], c.now_ns);
    if (flags & get) {
        if (old)
            resp::append_bulk(c.out, old->value);
        else
            resp::append_null(c.out);
    }
    if (((flags & nx) && old) || ((flags & xx) && !old)) {
        if (!(flags & get))
            resp::append_null(c.out);
        return;
    }
    Entry& e = old ? *old : c.s.keys.upsert(a[1]);
    e.value.assign(a[2]);
    if (deadline_ns != 0)
        c.s.set_expire(e, a[1], deadline_ns);
    else if (!(flags & keepttl))
        c.s.keys.clear_expire(e);
    if (!(flags & get))
        c.ok();
}

void cmd_setnx(Ctx& c) {
    if (c.s.keys.find(c.argv[1], c.now_ns)) {
        resp::append_integer(c.out, 0);
        return;
    }
    c.s.keys.upsert(c.argv[1]).value.assign(c.argv[2]);
    resp::append_integer(c.out, 1);
}

void cmd_getset(Ctx& c) {
    Entry* old = c.s.keys.find(c.argv[1], c.now_ns);
    if (old)
        resp::append_bulk(c.out, old->value);
    else
        resp::append_null(c.out);
    Entry& e = old ? *old : c.s.keys.upsert(c.argv[1]);
    e.value.assign(c.argv[2]);
    c.s.keys.clear_expire(e);
}

void cmd_getdel(Ctx& c) {
    Entry* e = c.lookup(c.argv[1]);
    if (!e)
        return resp::append_null(c.out);
    resp::append_bulk(c.out, e->value);
    c.s.keys.erase(c.argv[1]);
}

void cmd_append(Ctx& c) {
    Entry* e = c.s.keys.find(c.argv[1], c.now_ns);
    if (e && e->value.size() + c.argv[2].size() > c.s.config.limits.resp.max_bulk_bytes)
        return c.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    Entry& target = e ? *e : c.s.keys.upsert(c.argv[1]);
    target.value.append(c.argv[2]);
    resp::append_integer(c.out, static_cast<long long>(target.value.size()));
}

void cmd_strlen(Ctx& c) {
    Entry* e = c.lookup(c.argv[1]);
    resp::append_integer(c.out, e ? static_cast<long long>(e->value.size()) : 0);
}

void cmd_type(Ctx& c) {
    if (c.s.keys.find(c.argv[1], c.now_ns))
        c.out.append("+string\r\n");
    else
        c.out.append("+none\r\n");
}

void cmd_del(Ctx& c) {
    long long n = 0;
    for (std::size_t i = 1; i < c.argv.size(); ++i)
        if (c.s.keys.find(c.argv[i], c.now_ns) && c.s.keys.erase(c.argv[i]))
            ++n;
    resp::append_integer(c.out, n);
}

void cmd_exists(Ctx& c) {
    long long n = 0;
    for (std::size_t i = 1; i < c.argv.size(); ++i)
        if (c.s.keys.find(c.argv[i], c.now_ns))
            ++n;
    resp::append_integer(c.out, n);
}

void incr_by(Ctx& c, long long by) {
    Entry* e = c.s.keys.find(c.argv[1], c.now_ns);
    long long value = 0;
    if (e && !resp::parse_integer(e->value, value))
        return c.not_integer();
    if ((by < 0 && value < 0 && by < LLONG_MIN - value) || (by > 0 && value > 0 && by > LLONG_MAX - value))
        return c.error("ERR increment or decrement would overflow");
    value += by;
    Entry& target = e ? *e : c.s.keys.upsert(c.argv[1]);
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    (void)ec;
    target.value.assign(digits, static_cast<std::size_t>(end - digits));
    resp::append_integer(c.out, value);
}

void cmd_incr(Ctx& c) { incr_by(c, 1); }
void cmd_decr(Ctx& c) { incr_by(c, -1); }
void cmd_incrby(Ctx& c) {
    long long by = 0;
    if (!resp::parse_integer(c.argv[2], by))
        return c.not_integer();
    incr_by(c, by);
}
void cmd_decrby(Ctx& c) {
    long long by = 0;
    if (!resp::parse_integer(c.argv[2], by))
        return c.not_integer();
    if (by == LLONG_MIN)
        return c.error("ERR decrement would overflow");
    incr_by(c, -by);
}

void cmd_mget(Ctx& c) {
    resp::append_array_header(c.out, c.argv.size() - 1);
    for (std::size_t i = 1; i < c.argv.size(); ++i) {
        if (Entry* e = c.lookup(c.argv[i]))
            resp::append_bulk(c.out, e->value);
        else
            resp::append_null(c.out);
    }
}

void cmd_mset(Ctx& c) {
    if (c.argv.size() % 2 == 0)
        return arity_error(c, "mset");
    for (std::size_t i = 1; i + 1 < c.argv.size(); i += 2) {
        Entry* e = c.s.keys.find(c.argv[i], c.now_ns);
        Entry& target = e ? *e : c.s.keys.upsert(c.argv[i]);
        target.value.assign(c.argv[i + 1]);
        c.s.keys.clear_expire(target);
    }
    c.ok();
}

void expire_generic(Ctx& c, Unit unit, std::string_view name) {
    enum : unsigned { nx = 1, xx = 2, gt = 4, lt = 8 };
    unsigned flags = 0;
    for (std::size_t j = 3; j < c.argv.size(); ++j) {
        const std::string_view opt = c.argv[j];
        if (equals_ci(opt, "nx"))
            flags |= nx;
        else if (equals_ci(opt, "xx"))
            flags |= xx;
        else if (equals_ci(opt, "gt"))
            flags |= gt;
        else if (equals_ci(opt, "lt"))
            flags |= lt;
        else
            return c.error(fmt::format("ERR Unsupported option {}", opt));
    }
    if ((flags & nx) && (flags & (xx | gt | lt)))
        return c.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    if ((flags & gt) && (flags & lt))
        return c.error("ERR GT and LT options at the same time are not compatible");
    long long amount = 0;
    if (!resp::parse_integer(c.argv[2], amount))
        return c.not_integer();
    std::int64_t deadline_ns = 0;
    if (!to_deadline(c, amount, unit, false, deadline_ns))
        return c.error(fmt::format("ERR invalid expire time in '{}' command", name));
    Entry* e = c.s.keys.find(c.argv[1], c.now_ns);
    if (!e)
        return resp::append_integer(c.out, 0);
    const std::int64_t current = e->expire_ns;  // 0: no expiry, i.e. an infinite TTL
    if (((flags & nx) && current != 0) || ((flags & xx) && current == 0) ||
        ((flags & gt) && (current == 0 || deadline_ns <= current)) ||
        ((flags & lt) && current != 0 && deadline_ns >= current))
        return resp::append_integer(c.out, 0);
    if (deadline_ns <= c.now_ns) {
        c.s.keys.erase(c.argv[1]);  // already past: deleted, not counted as expired (as in Redis)
    } else {
        c.s.set_expire(*e, c.argv[1], deadline_ns);
    }
    resp::append_integer(c.out, 1);
}

void cmd_expire(Ctx& c) { expire_generic(c, Unit::seconds, "expire"); }
void cmd_pexpire(Ctx& c) { expire_generic(c, Unit::milliseconds, "pexpire"); }

void ttl_generic(Ctx& c, bool in_ms) {
    Entry* e = c.s.keys.find(c.argv[1], c.now_ns);
    if (!e)
        return resp::append_integer(c.out, -2);
    if (e->expire_ns == 0)
        return resp::append_integer(c.out, -1);
    const long long left_ms = std::max<long long>(0, (e->expire_ns - c.now_ns + 500'000) / 1'000'000);
    resp::append_integer(c.out, in_ms ? left_ms : (left_ms + 500) / 1000);
}

void cmd_ttl(Ctx& c) { ttl_generic(c, false); }
void cmd_pttl(Ctx& c) { ttl_generic(c, true); }

void cmd_persist(Ctx& c) {
    Entry* e = c.s.keys.find(c.argv[1], c.now_ns);
    if (!e || e->expire_ns == 0)
        return resp::append_integer(c.out, 0);
    c.s.keys.clear_expire(*e);
    resp::append_integer(c.out, 1);
}

void cmd_dbsize(Ctx& c) { resp::append_integer(c.out, static_cast<long long>(c.s.keys.size())); }

void flush_generic(Ctx& c) {
    if (c.argv.size() > 2 || (c.argv.size() == 2 && !equals_ci(c.argv[1], "async") && !equals_ci(c.argv[1], "sync")))
        return c.syntax_error();
    c.s.keys.flush();
    c.ok();
}

void cmd_select(Ctx& c) {
    long long db = 0;
    if (!resp::parse_integer(c.argv[1], db))
        return c.not_integer();
    if (db != 0)
        return c.error("ERR DB index is out of range");
    c.ok();
}

void cmd_time(Ctx& c) {
    const long long us = std::chrono::duration_cast<std::chrono::microseconds>(wall_now().time_since_epoch()).count();
    char digits[24];
    resp::append_array_header(c.out, 2);
    auto put = [&](long long v) {
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
        (void)ec;
        resp::append_bulk(c.out, std::string_view(digits, static_cast<std::size_t>(end - digits)));
    };
    put(us / 1'000'000);
    put(us % 1'000'000);
}

void cmd_quit(Ctx& c) {
    c.ok();
    c.quit = true;
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE], as Redis 7 spells it: a graceful stop of the whole
/// server. Nothing is persisted, so SAVE and NOSAVE are accepted and mean the same; NOW and
/// FORCE too (there is nothing to wait for). As in Redis, success has no reply: the
/// connection closes (redis-cli prints nothing and exits 0).
void cmd_shutdown(Ctx& c) {
    bool save = false, nosave = false;
    for (std::size_t i = 1; i < c.argv.size(); ++i) {
        const std::string_view opt = c.argv[i];
        if (equals_ci(opt, "nosave"))
            nosave = true;
        else if (equals_ci(opt, "save"))
            save = true;
        else if (equals_ci(opt, "abort"))
            return c.error("ERR No shutdown in progress.");  // a SHUTDOWN here never waits
        else if (!equals_ci(opt, "now") && !equals_ci(opt, "force"))
            return c.syntax_error();
    }
    if (save && nosave)
        return c.syntax_error();
    c.s.request_shutdown(c.client.id);
    c.quit = true;
}

void unknown_subcommand(Ctx& c, std::string_view container) {
    c.error(fmt::format("ERR unknown subcommand '{:.128}'. Try {} HELP.", c.argv[1], container));
}

void cmd_client(Ctx& c) {
    const std::string_view sub = c.argv[1];
    if (equals_ci(sub, "setname")) {
        if (c.argv.size() != 3)
            return arity_error(c, "client|setname");
        for (char ch : c.argv[2])
            if (ch < '!' || ch > '~')
                return c.error("ERR Client names cannot contain spaces, newlines or special characters.");
        c.client.name.assign(c.argv[2]);
        return c.ok();
    }
    if (equals_ci(sub, "getname")) {
        if (c.argv.size() != 2)
            return arity_error(c, "client|getname");
        if (c.client.name.empty())
            return resp::append_null(c.out);
        return resp::append_bulk(c.out, c.client.name);
    }
    if (equals_ci(sub, "id")) {
        if (c.argv.size() != 2)
            return arity_error(c, "client|id");
        return resp::append_integer(c.out, static_cast<long long>(c.client.id));
    }
    unknown_subcommand(c, "CLIENT");
}

std::size_t command_count();

void cmd_command(Ctx& c) {
    if (c.argv.size() == 1)
        return resp::append_array_header(c.out, 0);  // no command table: redis-cli starts without hints
    const std::string_view sub = c.argv[1];
    if (equals_ci(sub, "docs"))
        return resp::append_array_header(c.out, 0);
    if (equals_ci(sub, "count"))
        return resp::append_integer(c.out, static_cast<long long>(command_count()));
    if (equals_ci(sub, "info")) {
        resp::append_array_header(c.out, c.argv.size() - 2);
        for (std::size_t i = 2; i < c.argv.size(); ++i)
            resp::append_null_array(c.out);
        return;
    }
    unknown_subcommand(c, "COMMAND");
}

void cmd_config(Ctx& c) {
    const std::string_view sub = c.argv[1];
    if (equals_ci(sub, "get")) {
        if (c.argv.size() < 3)
            return arity_error(c, "config|get");
        // The few parameters benchmarks and clients ask for; others are absent.
        static constexpr std::pair<std::string_view, std::string_view> known[] = {
            {"save", ""}, {"appendonly", "no"}, {"databases", "1"}};
        std::vector<std::pair<std::string_view, std::string_view>> hits;
        for (std::size_t i = 2; i < c.argv.size(); ++i)
            for (const auto& kv : known)
                if (equals_ci(c.argv[i], kv.first) &&
                    std::find(hits.begin(), hits.end(), kv) == hits.end())
                    hits.push_back(kv);
        resp::append_array_header(c.out, hits.size() * 2);
        for (const auto& [k, v] : hits) {
            resp::append_bulk(c.out, k);
            resp::append_bulk(c.out, v);
        }
        return;
    }
    if (equals_ci(sub, "resetstat")) {
        if (c.argv.size() != 2)
            return arity_error(c, "config|resetstat");
        const std::uint64_t clients = c.s.stats.connected_clients;
        c.s.stats = Stats{};
        c.s.stats.connected_clients = clients;
        c.s.keys.reset_expired();
        return c.ok();
    }
    unknown_subcommand(c, "CONFIG");
}

void cmd_info(Ctx& c);

/// Every command, by lowercase name.
constexpr Command command_table[] = {
    {"append", 3, cmd_append},   {"client", -2, cmd_client},   {"command", -1, cmd_command},
    {"config", -2, cmd_config},  {"dbsize", 1, cmd_dbsize},    {"decr", 2, cmd_decr},
    {"decrby", 3, cmd_decrby},   {"del", -2, cmd_del},         {"echo", 2, cmd_echo},
    {"exists", -2, cmd_exists},  {"expire", -3, cmd_expire},   {"flushall", -1, flush_generic},
    {"flushdb", -1, flush_generic}, {"get", 2, cmd_get},       {"getdel", 2, cmd_getdel},
    {"getset", 3, cmd_getset},   {"incr", 2, cmd_incr},        {"incrby", 3, cmd_incrby},
    {"info", -1, cmd_info},      {"mget", -2, cmd_mget},       {"mset", -3, cmd_mset},
    {"persist", 2, cmd_persist}, {"pexpire", -3, cmd_pexpire}, {"ping", -1, cmd_ping},
    {"pttl", 2, cmd_pttl},       {"quit", -1, cmd_quit},       {"select", 2, cmd_select},
    {"set", -3, cmd_set},        {"setnx", 3, cmd_setnx},      {"shutdown", -1, cmd_shutdown},
    {"strlen", 2, cmd_strlen},
    {"time", 1, cmd_time},       {"ttl", 2, cmd_ttl},          {"type", 2, cmd_type},
};

std::size_t command_count() { return std::size(command_table); }

/// The command named `name` (any case), or null. Names are lowercased into a small
/// buffer and looked up in a hash map built once (immutable: no node state).
const Command* find_command(std::string_view name) {
    static const std::unordered_map<std::string_view, const Command*> by_name = [] {
        std::unordered_map<std::string_view, const Command*> m;
        for (const Command& cmd : command_table)
            m.emplace(cmd.name, &cmd);
        return m;
    }();
    char lower[16];
    if (name.size() > sizeof lower)
        return nullptr;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char ch = name[i];
        lower[i] = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    }
    auto it = by_name.find(std::string_view(lower, name.size()));
    return it == by_name.end() ? nullptr : it->second;
}

void append_info_section(Ctx& c, std::string& text, std::string_view section) {
    const Server::State& s = c.s;
    if (!text.empty())
        text += "\r\n";
    if (section == "server") {
        const long long uptime_s = std::chrono::duration_cast<std::chrono::seconds>(now() - s.started).count();
        text += fmt::format(
            "# Server\r\nredis_version:{}\r\nreprise_kv_version:0.1.0\r\nredis_mode:standalone\r\n"
            "multiplexing_api:reprise (libevent)\r\narch_bits:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n"
            "uptime_in_days:{}\r\nhz:0\r\n",
            redis_version, sizeof(void*) * 8, s.listener ? s.listener.port() : 0, uptime_s, uptime_s / 86400);
    } else if (section == "clients") {
        text += fmt::format("# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
                            s.stats.connected_clients, s.config.limits.max_clients);
    } else if (section == "stats") {
        text += fmt::format(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\n"
            "total_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\n"
            "keyspace_hits:{}\r\nkeyspace_misses:{}\r\ntotal_error_replies:{}\r\n",
            s.stats.connections_received, s.stats.commands_processed, s.stats.net_input_bytes,
            s.stats.net_output_bytes, s.stats.connections_rejected, s.keys.expired(),
            s.stats.keyspace_hits, s.stats.keyspace_misses, s.stats.error_replies);
    } else if (section == "keyspace") {
        text += "# Keyspace\r\n";
        if (s.keys.size() > 0)
            text += fmt::format("db0:keys={},expires={},avg_ttl=0\r\n", s.keys.size(), s.keys.with_expiry());
    }
}

void cmd_info(Ctx& c) {
    static constexpr std::string_view all[] = {"server", "clients", "stats", "keyspace"};
    bool wanted[std::size(all)] = {};
    if (c.argv.size() == 1) {
        std::fill(std::begin(wanted), std::end(wanted), true);
    } else {
        for (std::size_t i = 1; i < c.argv.size(); ++i) {
            const std::string_view arg = c.argv[i];
            if (equals_ci(arg, "all") || equals_ci(arg, "default") || equals_ci(arg, "everything"))
                std::fill(std::begin(wanted), std::end(wanted), true);
            for (std::size_t k = 0; k < std::size(all); ++k)
                if (equals_ci(arg, all[k]))
                    wanted[k] = true;
        }
    }
    std::string text;
    for (std::size_t k = 0; k < std::size(all); ++k)
        if (wanted[k])
            append_info_section(c, text, all[k]);
    resp::append_bulk(c.out, text);
}

void unknown_command(Ctx& c) {
    std::string text = fmt::format("ERR unknown command '{:.128}', with args beginning with: ", c.argv[0]);
    std::string args;
    for (std::size_t i = 1; i < c.argv.size() && args.size() < 128; ++i)
        args += fmt::format("'{:.{}}' ", c.argv[i], 128 - args.size());
    text += args;
    c.error(text);
}

void execute(Ctx& c) {
    if (auth::gate(c.s.config.requirepass, c.argv, c.client.authenticated, c.out))
        return;
    const Command* cmd = find_command(c.argv[0]);
    if (cmd == nullptr)
        return unknown_command(c);
    const auto argc = static_cast<long long>(c.argv.size());
    if ((cmd->arity >= 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity))
        return arity_error(c, cmd->name);
    cmd->handler(c);
    ++c.s.stats.commands_processed;  // as in Redis: rejected commands do not count, and INFO does not see itself
}

/// A client's unparsed input: bytes [begin, end) of a buffer that grows up to a bound.
class InputBuffer {
public:
    std::string_view pending() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_) {
            begin_ = end_ = 0;
            if (cap_ > release_above_bytes) {  // a client that once sent a big value does not keep its buffer
                data_.reset();
                cap_ = 0;
            }
        }
    }
    /// Room for at least `want` more bytes (fewer at the bound), moving pending bytes
    /// to the front or growing the buffer; empty when pending bytes already fill `max_bytes`.
    std::span<char> space(std::size_t want, std::size_t max_bytes) {
        if (cap_ - end_ >= want)
            return {data_.get() + end_, cap_ - end_};
        const std::size_t used = end_ - begin_;
        if (begin_ > 0 && cap_ - used >= want) {
            std::memmove(data_.get(), data_.get() + begin_, used);
            begin_ = 0;
            end_ = used;
            return {data_.get() + end_, cap_ - end_};
        }
        std::size_t cap = std::max(cap_ * 2, initial_input_bytes);
        while (cap < used + want)
            cap *= 2;
        cap = std::min(cap, max_bytes);
        if (cap <= used) {
            if (begin_ > 0) {  // at the bound: still room once compacted
                std::memmove(data_.get(), data_.get() + begin_, used);
                begin_ = 0;
                end_ = used;
            }
            return {data_.get() + end_, cap_ - end_};
        }
        auto bigger = std::make_unique_for_overwrite<char[]>(cap);  // no zero-fill
        if (used > 0)
            std::memcpy(bigger.get(), data_.get() + begin_, used);
        data_ = std::move(bigger);
        cap_ = cap;
        begin_ = 0;
        end_ = used;
        return {data_.get() + end_, cap_ - end_};
    }
    void commit(std::size_t n) noexcept { end_ += n; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t cap_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

} // namespace

void Server::State::serve_client(Connection conn, std::uint64_t id) {
    Client client;
    client.id = id;
    const ServerLimits& lim = config.limits;
    resp::Parser parser(lim.resp);
    InputBuffer input;
    std::vector<std::string_view> argv;
    std::string out;
    std::size_t needed = 1;  // input size before a parse can get further
    for (;;) {
        bool quit = false;
        std::string_view data = input.pending();
        while (data.size() >= needed) {
            const resp::Parsed p = parser.parse(data, argv);
            if (p.status == resp::Status::incomplete) {
                needed = std::max(p.needed, data.size() + 1);
                break;
            }
            if (p.status == resp::Status::error) {
                resp::append_error(out, "ERR " + p.error);
                ++stats.error_replies;
                quit = true;
                break;
            }
            needed = 1;
            if (!argv.empty()) {
                Ctx ctx{*this, client, argv, out, ns_of(now())};
                execute(ctx);
                quit = ctx.quit;
            }
            input.consume(p.consumed);
            data = input.pending();
            if (quit)
                break;
            if (out.size() >= lim.reply_flush_bytes) {
                stats.net_output_bytes += out.size();
                if (!conn.write(out).ok())
                    return;
                out.clear();
            }
        }
        if (!quit && needed > lim.max_client_input_bytes) {
            resp::append_error(out, "ERR Protocol error: request exceeds the client input limit");
            ++stats.error_replies;
            quit = true;
        }
        if (!out.empty()) {
            stats.net_output_bytes += out.size();
            if (!conn.write(out).ok())
                return;
            out.clear();
            if (out.capacity() > 4 * lim.reply_flush_bytes)
                out.shrink_to_fit();
        }
        if (quit) {
            conn.shutdown();  // after QUIT's +OK, a protocol error, or SHUTDOWN (no reply)
            return;
        }
        // Room for what has arrived (at least a read chunk), never for what a header only
        // declares: a client claiming an 8 MiB bulk and sending 10 bytes costs a 16 KiB
        // buffer, not 8 MiB. The buffer doubles as bytes come, so a big value still costs
        // amortised linear copying, and `needed` spares re-parsing until it is all here.
        const std::size_t want = std::min(std::max(conn.buffered(), initial_input_bytes),
                                          lim.max_client_input_bytes);
        std::span<char> room = input.space(want, lim.max_client_input_bytes);
        REPRISE_ASSERT_MSG(!room.empty(), "a client's input buffer below its bound always has room");
        auto n = conn.read_some(room);
        if (!n.ok())
            return;  // eof, reset, cancelled (graceful stop): the client is gone
        input.commit(*n);
        stats.net_input_bytes += *n;
    }
}

void Server::State::expiry_loop() {
    for (;;) {
        const std::int64_t next = keys.next_deadline();
        if (next == 0) {
            if (!expiry_wake.wait().ok())
                return;
            continue;
        }
        if (next > ns_of(now())) {
            expiry_timer.start_at(Instant{Duration{next}});
            auto r = expiry_timer.wait();
            if (!r.ok() && r.code() != Errc::closed)
                return;
        }
        std::size_t removed = keys.expire_due(ns_of(now()), config.limits.expire_batch_max, [&](std::string_view key) {
            if (expire_hook)
                expire_hook(key);
        });
        if (removed == config.limits.expire_batch_max) {
            yield();  // more are due: let clients run between batches
            if (cancelled())
                return;
        }
    }
}

Server::Server(Config config) : state_(std::make_shared<State>()) {
    state_->config = std::move(config);
    state_->started = now();
}

Server::~Server() = default;

Result<void> Server::listen() {
    std::string host = state_->config.bind;
    if (host.find(':') != std::string::npos && host.front() != '[')
        host = "[" + host + "]";
    auto address = Address::parse(fmt::format("{}:{}", host, state_->config.port));
    if (!address.ok())
        return address.error();
    auto listener = reprise::listen(*address);
    if (!listener.ok())
        return listener.error();
    state_->listener = std::move(*listener);
    return {};
}

std::uint16_t Server::port() const { return state_->listener.port(); }
Stats Server::stats() const noexcept {
    Stats s = state_->stats;
    s.expired_keys = state_->keys.expired();
    return s;
}
std::size_t Server::key_count() const noexcept { return state_->keys.size(); }
void Server::on_active_expire(std::function<void(std::string_view)> hook) { state_->expire_hook = std::move(hook); }

int Server::serve() {
    std::shared_ptr<State> shared = state_;
    State& s = *shared;
    REPRISE_ASSERT_MSG(s.listener, "Server::serve() before listen()");
    // Tasks hold the state they use: once the caller is cancelled it cannot block to
    // join them, so they finish on their own after serve() returned.
    s.expiry_task = spawn("kv-expiry", [shared] { shared->expiry_loop(); });
    int status = 0;
    for (;;) {
        auto conn = s.listener.accept();
        if (!conn.ok()) {
            if (conn.code() == Errc::cancelled)
                break;
            if (conn.code() == Errc::closed) {
                status = s.shutdown_requested ? 0 : 1;  // SHUTDOWN closed it: a graceful stop
                break;
            }
            fmt::print(stderr, "reprise-kv: accept failed: {}\n", conn.error().message());
            if (!sleep_for(10ms).ok())
                break;
            continue;
        }
        ++s.stats.connections_received;
        if (s.clients.size() >= s.config.limits.max_clients) {
            ++s.stats.connections_rejected;
            (void)conn->write("-ERR max number of clients reached\r\n");
            continue;  // dropping the connection closes it once the error is sent
        }
        const std::uint64_t id = s.next_client_id++;
        ++s.stats.connected_clients;
        s.clients.emplace(id, spawn(fmt::format("kv-client-{}", id), [shared, id, c = std::move(*conn)]() mutable {
                              shared->serve_client(std::move(c), id);
                              --shared->stats.connected_clients;
                              shared->clients.erase(id);  // detaches this task's own handle; it ends right here
                          }));
    }
    // Graceful stop (cancelled, or SHUTDOWN): no new clients; the connected ones and the expiry task are cancelled
    // (a blocked read or wait returns Errc::cancelled and the task ends).
    s.listener.close();
    for (auto& [id, task] : s.clients)
        task.cancel();
    s.expiry_task.cancel();
    return status;
}

std::string usage_text() {
    const ServerLimits d;
    return fmt::format(
        R"(Program usage:
  reprise-kv [--port P] [--bind ADDR] [limits]
  A Redis-protocol (RESP2) string key-value server. Prints "listening P" once it listens.
  Flags take their value as the next argument or after '=' (--port 7000, --port=7000).
  --port P                  TCP port (default 6379; 0: any free port)
  --bind ADDR               numeric address to listen on (default 127.0.0.1)
  --requirepass-file FILE   clients must AUTH with the password in FILE (one trailing newline
                            dropped); recorded as a salted digest only, and redacted from the
                            bytes read (replay reads FILE again, or $REPRISE_SECRET_FILE_REQUIREPASS)
  --protected-mode yes|no   with no password, refuse a --bind other than loopback (default yes)
Limits (a request past one gets "-ERR Protocol error: ..." and its connection is closed):
  --max-bulk BYTES          one bulk string (key or value) (default {} = 8m)
  --max-args N              elements of one multibulk request (default {})
  --max-inline BYTES        one inline command line, and a *N/$N header line (default {} = 64k)
  --max-client-input BYTES  unparsed input buffered for one client (default {} = 32m)
  --max-clients N           clients at once; more get "-ERR max number of clients reached" (default {})
  (BYTES takes a k or m suffix.)
Commands: PING ECHO GET SET(EX PX EXAT PXAT NX XX KEEPTTL GET) SETNX GETSET GETDEL APPEND STRLEN TYPE
  DEL EXISTS INCR DECR INCRBY DECRBY MGET MSET EXPIRE PEXPIRE(NX XX GT LT) TTL PTTL PERSIST
  DBSIZE FLUSHALL FLUSHDB SELECT 0 TIME INFO QUIT CLIENT(SETNAME GETNAME ID) COMMAND(COUNT DOCS INFO)
  CONFIG(GET RESETSTAT) SHUTDOWN AUTH; inline commands (as typed into nc) and pipelining.
  SHUTDOWN [NOSAVE|SAVE] stops the server gracefully (exit 0; a recording is sealed) and closes
  the connection without a reply, as Redis does; nothing is ever saved, so SAVE changes nothing.)",
        d.resp.max_bulk_bytes, d.resp.max_args, d.resp.max_inline_bytes, d.max_client_input_bytes, d.max_clients);
}

namespace {

bool parse_size_arg(std::string_view text, std::size_t min, std::size_t max, std::size_t& out) {
    std::size_t scale = 1;
    if (!text.empty() && (text.back() == 'k' || text.back() == 'K'))
        scale = 1024;
    else if (!text.empty() && (text.back() == 'm' || text.back() == 'M'))
        scale = 1024 * 1024;
    if (scale != 1)
        text.remove_suffix(1);
    std::size_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v > max / scale)
        return false;
    v *= scale;
    if (v < min || v > max)
        return false;
    out = v;
    return true;
}

} // namespace

namespace {
constexpr const char* flag_table[] = {"--port",       "--bind",             "--max-bulk", "--max-args",
                                      "--max-inline", "--max-client-input", "--max-clients",
                                      "--requirepass-file", "--protected-mode"};
} // namespace

std::vector<std::string> flag_names() { return {std::begin(flag_table), std::end(flag_table)}; }

std::string parse_args(const std::vector<std::string>& args, Config& config) {
    // CLI11 splits "--flag value" / "--flag=value" and finds unknown flags; values are
    // checked here, in this order, with the messages below.
    const auto& names = flag_table;
    std::string values[std::size(names)];
    CLI::App app{"reprise-kv"};
    for (std::size_t i = 0; i < std::size(names); ++i)
        app.add_option(names[i], values[i]);
    if (std::string error = flags::parse(app, args); !error.empty())
        return error;
    ServerLimits& lim = config.limits;
    for (std::size_t i = 0; i < std::size(names); ++i) {
        const std::string_view flag = names[i];
        const std::string_view v = values[i];
        if (app.count(names[i]) == 0)
            continue;
        std::size_t n = 0;
        if (flag == "--port") {
            if (!parse_size_arg(v, 0, 65535, n) || v.back() == 'k' || v.back() == 'm')
                return fmt::format("--port needs a number from 0 to 65535, got '{}'", v);
            config.port = static_cast<std::uint16_t>(n);
        } else if (flag == "--bind") {
            if (v.empty())
                return "--bind needs an address";
            config.bind = std::string(v);
        } else if (flag == "--max-bulk") {
            if (!parse_size_arg(v, 1, 512u * 1024 * 1024, lim.resp.max_bulk_bytes))
                return fmt::format("--max-bulk needs a size from 1 to 512m, got '{}'", v);
        } else if (flag == "--max-args") {
            if (!parse_size_arg(v, 1, 1u << 24, lim.resp.max_args))
                return fmt::format("--max-args needs a number from 1 to {}, got '{}'", 1u << 24, v);
        } else if (flag == "--max-inline") {
            if (!parse_size_arg(v, 64, 16u * 1024 * 1024, lim.resp.max_inline_bytes))
                return fmt::format("--max-inline needs a size from 64 to 16m, got '{}'", v);
        } else if (flag == "--max-client-input") {
            if (!parse_size_arg(v, 64 * 1024, std::size_t{4} * 1024 * 1024 * 1024, lim.max_client_input_bytes))
                return fmt::format("--max-client-input needs a size from 64k to 4096m, got '{}'", v);
        } else if (flag == "--requirepass-file") {
            if (v.empty())
                return "--requirepass-file needs a file";
            config.requirepass_file = std::string(v);
        } else if (flag == "--protected-mode") {
            if (!auth::parse_protected_mode(v, config.protected_mode))
                return fmt::format("--protected-mode needs yes or no, got '{}'", v);
        } else if (flag == "--max-clients") {
            if (!parse_size_arg(v, 1, 1u << 20, lim.max_clients))
                return fmt::format("--max-clients needs a number from 1 to {}, got '{}'", 1u << 20, v);
        }
    }
    // A maximal bulk with its header must fit in a client's input buffer.
    if (config.limits.max_client_input_bytes < config.limits.resp.max_bulk_bytes + 64)
        return "--max-client-input must exceed --max-bulk (a whole bulk is buffered before it is used)";
    return {};
}

int main_entry(MainContext& ctx) {
    Config config;
    if (std::string error = parse_args(ctx.args, config); !error.empty()) {
        fmt::print(stderr, "reprise-kv: {}\n(see reprise-kv --help)\n", error);
        return 2;
    }
    if (!config.requirepass_file.empty()) {
        auto password = read_secret("requirepass", config.requirepass_file);
        if (!password.ok()) {
            fmt::print(stderr, "reprise-kv: cannot read --requirepass-file {}: {}\n", config.requirepass_file,
                       password.error().message());
            return 2;
        }
        config.requirepass = std::move(*password);
    }
    if (std::string refusal = auth::protected_mode_refusal(config.bind, !config.requirepass.empty(), config.protected_mode);
        !refusal.empty()) {
        fmt::print(stderr, "reprise-kv: {}\n", refusal);
        return 2;
    }
    Server server(std::move(config));
    if (auto r = server.listen(); !r.ok()) {
        fmt::print(stderr, "reprise-kv: listen failed: {}\n", r.error().message());
        return 1;
    }
    fmt::print("listening {}\n", server.port());
    std::fflush(stdout);
    return server.serve();
}

ProgramEntry program() {
    return ProgramEntry{.name = "reprise-kv", .main = main_entry, .usage = usage_text(), .flags = flag_names()};
}

} // namespace reprise::kv
