// TCP operations of tasks. They touch only buffers and wait lists; sockets belong to the backend.
#include "reprise/io/tcp.hpp"

#include "reprise/runtime/codec.hpp"
#include "reprise/io/internal/tcp_state.hpp"
#include "reprise/runtime/internal/core.hpp"

#include <cstring>

namespace reprise {

using namespace detail;

// --- Connection -------------------------------------------------------------------

Connection::~Connection() {
    close();
    delete state_;
}

Connection& Connection::operator=(Connection&& other) noexcept {
    if (this != &other) {
        close();
        delete state_;
        state_ = other.state_;
        other.state_ = nullptr;
    }
    return *this;
}

void Connection::close() noexcept {
    if (state_ && !state_->closed)
        state_->rt->close_connection(state_);
}

bool Connection::is_open() const noexcept { return state_ && !state_->closed; }
Address Connection::local_address() const { return state_ ? state_->local : Address{}; }
Address Connection::peer_address() const { return state_ ? state_->peer : Address{}; }
std::uint64_t Connection::id() const noexcept { return state_ ? state_->id : 0; }
std::size_t Connection::buffered() const noexcept { return state_ ? state_->input.size() : 0; }

// Why no more input will come to `c` (closed, its error, eof), or nothing: more may.
static Result<void> no_more_input(const ConnState& c) {
    if (c.closed)
        return Errc::closed;
    if (c.error)
        return *c.error;
    if (c.eof)
        return Errc::eof;
    return {};
}

// Waits until input is buffered, or says why none will come. Buffered bytes are
// served before a pending eof or error is reported.
static Result<void> wait_readable(ConnState* state, Deadline deadline) {
    REPRISE_ASSERT_MSG(state != nullptr, "read from an empty Connection");
    for (;;) {
        ConnState& c = *state;
        if (!c.input.empty())
            return {};
        if (auto end = no_more_input(c); !end.ok())
            return end.error();
        check_own_handle(c, "a read");
        if (auto r = c.readers.wait(deadline); !r.ok())
            return r;
    }
}

static void set_reading_paused(Runtime::Impl& rt, ConnState& c, bool paused) {
    if (c.read_paused != paused) {
        c.read_paused = paused;
        rt.backend->set_reading(c, !paused);
    }
}

// Consumes input; a connection whose reading was paused on a full buffer resumes.
static void consume_input(Runtime::Impl& rt, ConnState& c, std::size_t n) {
    c.input.consume(n);
    c.input_limit = limits::input_buffer_bytes_max;
    if (c.read_paused && c.input.size() < c.input_limit / 2)
        set_reading_paused(rt, c, false);
}

// A reader that needs `want` bytes buffered at once may need more than the usual
// input limit: raise it for this read (the caller's own bound) and resume reading.
static void want_input(Runtime::Impl& rt, ConnState& c, std::size_t want) {
    if (want > c.input_limit)
        c.input_limit = want;
    if (c.read_paused && c.input.size() < c.input_limit)
        set_reading_paused(rt, c, false);
}

Result<std::size_t> Connection::read_some(std::span<char> buffer, Deadline deadline) {
    if (buffer.empty())
        return std::size_t{0};
    if (auto r = wait_readable(state_, deadline); !r.ok())
        return r.error();
    std::string_view in = state_->input.view();
    std::size_t n = std::min(in.size(), buffer.size());
    std::memcpy(buffer.data(), in.data(), n);
    consume_input(*state_->rt, *state_, n);
    return n;
}

Result<std::string> Connection::read_some(std::size_t max_bytes, Deadline deadline) {
    if (auto r = wait_readable(state_, deadline); !r.ok())
        return r.error();
    std::string_view in = state_->input.view();
    std::string out(in.substr(0, max_bytes));
    consume_input(*state_->rt, *state_, out.size());
    return out;
}

std::string_view Connection::peek() const noexcept { return state_ ? state_->input.view() : std::string_view{}; }

std::size_t Connection::discard(std::size_t n) noexcept {
    if (state_ == nullptr)
        return 0;
    n = std::min(n, state_->input.size());
    if (n > 0)
        consume_input(*state_->rt, *state_, n);
    return n;
}

Result<std::string> Connection::try_read(std::size_t max_bytes) {
    REPRISE_ASSERT_MSG(state_ != nullptr, "read from an empty Connection");
    std::string out(std::min(max_bytes, state_->input.size()), '\0');
    auto n = try_read(std::span<char>(out.data(), out.size()));
    if (!n.ok())
        return n.error();
    return out;
}

Result<std::size_t> Connection::try_read(std::span<char> buffer) {
    REPRISE_ASSERT_MSG(state_ != nullptr, "read from an empty Connection");
    if (state_->input.size() == 0) {
        if (auto end = no_more_input(*state_); !end.ok())
            return end.error();
        return std::size_t{0};
    }
    std::string_view in = state_->input.view();
    std::size_t n = std::min(in.size(), buffer.size());
    std::memcpy(buffer.data(), in.data(), n);
    consume_input(*state_->rt, *state_, n);
    return n;
}

Result<void> Connection::wait_buffered(std::size_t n, Deadline deadline) {
    REPRISE_ASSERT_MSG(state_ != nullptr, "read from an empty Connection");
    while (state_->input.size() < n) {
        // Wait for more than what is buffered: readable alone is not enough.
        ConnState& c = *state_;
        want_input(*c.rt, c, n);
        if (auto end = no_more_input(c); !end.ok())
            return end.error();
        check_own_handle(c, "a read");
        if (auto r = c.readers.wait(deadline); !r.ok())
            return r;
    }
    return {};
}

Result<void> Connection::read_exact(std::span<char> buffer, Deadline deadline) {
    if (auto r = wait_buffered(buffer.size(), deadline); !r.ok())
        return r;
    std::memcpy(buffer.data(), state_->input.view().data(), buffer.size());
    consume_input(*state_->rt, *state_, buffer.size());
    return {};
}

Result<std::string> Connection::read_exact(std::size_t n, Deadline deadline) {
    std::string out(n, '\0');
    if (auto r = read_exact(std::span<char>(out.data(), n), deadline); !r.ok())
        return r.error();
    return out;
}

Result<std::string> Connection::read_until(std::string_view delimiter, std::size_t max_bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(state_ != nullptr, "read from an empty Connection");
    REPRISE_ASSERT_MSG(!delimiter.empty(), "read_until needs a delimiter");
    std::size_t searched = 0;  // bytes already known not to start a match
    for (;;) {
        ConnState& c = *state_;
        std::string_view in = c.input.view();
        std::size_t at = in.find(delimiter, searched);
        if (at != std::string_view::npos && at + delimiter.size() <= max_bytes) {
            std::string out(in.substr(0, at + delimiter.size()));
            consume_input(*c.rt, c, out.size());
            return out;
        }
        if (at != std::string_view::npos || in.size() >= max_bytes)
            return Errc::limit;
        searched = in.size() >= delimiter.size() ? in.size() - delimiter.size() + 1 : 0;
        want_input(*c.rt, c, max_bytes);
        if (auto end = no_more_input(c); !end.ok())
            return end.error();
        check_own_handle(c, "a read");
        if (auto r = c.readers.wait(deadline); !r.ok())
            return r.error();
    }
}

Result<void> Connection::write(std::string_view bytes, Deadline deadline) {
    REPRISE_ASSERT_MSG(state_ != nullptr, "write to an empty Connection");
    Runtime::Impl& rt = *state_->rt;
    ConnState& c = *state_;
    if (c.closed)
        return Errc::closed;
    if (c.write_shut)
        return Error{Errc::broken_pipe};
    if (c.error)
        return *c.error;
    if (rt.journal)
        rt.journal->output(OutputKind::conn_write, c.id, bytes);
    c.output.append(bytes);
    c.output_pending += bytes.size();
    rt.queue_flush(&c);
    while (c.output_pending > limits::output_high_water_bytes) {
        check_own_handle(c, "Connection::write");
        if (auto r = c.writers.wait(deadline); !r.ok())
            return r;
        if (c.closed)
            return Errc::closed;
        if (c.error)
            return *c.error;
    }
    return {};
}

void Connection::shutdown() {
    if (!state_ || state_->closed || state_->write_shut)
        return;
    Runtime::Impl& rt = *state_->rt;
    state_->write_shut = true;
    rt.backend->shutdown_write(*state_);
}

// --- Listener ---------------------------------------------------------------------

Listener::~Listener() {
    close();
    delete state_;
}

Listener& Listener::operator=(Listener&& other) noexcept {
    if (this != &other) {
        close();
        delete state_;
        state_ = other.state_;
        other.state_ = nullptr;
    }
    return *this;
}

void Listener::close() noexcept {
    if (state_ && !state_->closed)
        state_->rt->close_listener(state_);
}

Result<Connection> Listener::accept(Deadline deadline) {
    REPRISE_ASSERT_MSG(state_ != nullptr, "accept on an empty Listener");
    Runtime::Impl& rt = *state_->rt;
    check_own_handle(*state_, "accept");
    ListenerState& l = *state_;
    while (l.ready.empty()) {
        if (l.closed)
            return Errc::closed;
        if (auto r = l.acceptors.wait(deadline); !r.ok())
            return r.error();
    }
    ConnState* c = l.ready.front();
    l.ready.pop_front();
    if (l.paused && l.ready.size() < limits::accept_queue_max / 2) {
        l.paused = false;
        rt.backend->set_accepting(l, true);
    }
    return Connection(c);
}

Address Listener::local_address() const { return state_ ? state_->local : Address{}; }
std::uint16_t Listener::port() const { return local_address().port(); }
std::uint64_t Listener::id() const noexcept { return state_ ? state_->id : 0; }

// --- listen / connect -------------------------------------------------------------

Result<Listener> listen(const Address& address) {
    Runtime::Impl& rt = current_runtime("listen()");
    auto* l = new ListenerState(rt, rt.new_id());
    // The outcome (the bound address, which with port 0 the system chose, or the
    // error) is an input: replay binds nothing and takes it from the trace.
    std::string outcome = rt.sync_input(InputKind::listen, address.to_string(), [&] {
        Result<void> r = rt.backend->listen(*l, address);
        return encode_value(std::make_pair(r, l->local.to_string()));
    });
    auto decoded = decode_value<std::pair<Result<void>, std::string>>(outcome);
    if (!decoded)
        rt.journal->diverge("a listen outcome that does not decode", "listened");
    if (!decoded->first.ok()) {
        delete l;
        return decoded->first.error();
    }
    l->local = Address::parse(decoded->second).value();  // live: what the backend bound; replay: as recorded
    rt.add_handle(l);
    return Listener(l);
}

Result<Connection> connect(const Address& address, Deadline deadline) {
    Runtime::Impl& rt = current_runtime("connect()");
    rt.running_fiber("connect()");
    auto* c = new ConnState(rt, rt.new_id());
    c->peer = address;
    rt.add_handle(c);
    Connection conn(c);  // closes the socket on every early return
    c->connecting = true;
    std::string started = rt.sync_input(InputKind::connect, address.to_string(),
                                        [&] { return encode_value(rt.backend->connect(*c, address)); });
    auto r = decode_value<Result<void>>(started);
    if (!r)
        rt.journal->diverge("a connect outcome that does not decode", "connected");
    if (!r->ok()) {
        c->connecting = false;
        return r->error();
    }
    while (c->connecting) {
        if (auto r = c->writers.wait(deadline); !r.ok())
            return r.error();
    }
    if (c->error)
        return *c->error;
    return conn;
}

// --- the runtime's side: output flushing (loop step 2) and the gate's handlers -------

void Runtime::Impl::flush_outputs() {
    for (std::size_t i = 0; i < flush_list.size(); ++i) {
        ConnState* c = flush_list[i];
        c->in_flush_list = false;
        if (!c->output.empty() && !c->error) {
            backend->flush(*c);
            // What the kernel did not take is an input (recorded when not 0): the
            // program's next write blocks, or not, on it.
            c->output_pending = journal ? journal->output_left(c->id, c->output.size()) : c->output.size();
        }
    }
    flush_list.clear();
}

void Runtime::Impl::queue_flush(ConnState* c) {
    if (!c->in_flush_list) {
        c->in_flush_list = true;
        flush_list.push_back(c);
    }
}

void Runtime::Impl::close_connection(ConnState* c) noexcept {
    if (c->closed)
        return;
    c->closed = true;
    if (c->in_flush_list) {
        std::erase(flush_list, c);
        c->in_flush_list = false;
    }
    remove_handle(c);
    c->readers.notify_all();
    c->writers.notify_all();
    backend->close(*c);
}

void Runtime::Impl::close_listener(ListenerState* l) noexcept {
    if (l->closed)
        return;
    l->closed = true;
    remove_handle(l);
    l->acceptors.notify_all();
    backend->close_listener(*l);
    for (ConnState* c : l->ready) {
        close_connection(c);
        delete c;
    }
    l->ready.clear();
}

void Runtime::Impl::deliver_accepted(const Wakeup& w, std::string_view, Handle& listener) {
    auto& l = static_cast<ListenerState&>(listener);
    // The id is drawn here, on delivery: a dropped wake-up moves no counter, and the
    // trace names the connection that later records speak of.
    const std::uint64_t id = new_id();
    if (journal)
        journal->accepted(w, id);
    auto* c = new ConnState(*this, id);
    c->peer = w.peer;
    c->local = w.local;
    add_handle(c);
    backend->adopt(*c, w.value);
    l.ready.push_back(c);
    if (l.ready.size() >= limits::accept_queue_max && !l.paused) {
        l.paused = true;
        backend->set_accepting(l, false);
    }
    l.acceptors.notify_one();
}

void Runtime::Impl::deliver_connection(const Wakeup& delivered, std::string_view data, Handle& connection) {
    auto& c = static_cast<ConnState&>(connection);
    // `drained` carries the output still unsent when it is delivered: live, measured
    // here (the kernel may have taken more since the backend saw the low-water mark);
    // in replay, the recorded value.
    Wakeup w = delivered;
    if (w.kind == WakeKind::drained && !replaying())
        w.value = static_cast<std::int32_t>(std::min<std::size_t>(c.output.size(), limits::output_low_water_bytes));
    if (journal)
        journal->wakeup(w, data);
    switch (w.kind) {
    case WakeKind::bytes_read:
        c.input.append(data);
        if (c.input.size() >= c.input_limit && !c.read_paused) {
            c.read_paused = true;
            backend->set_reading(c, false);
        }
        c.readers.notify_all();
        break;
    case WakeKind::eof:
        c.eof = true;
        c.readers.notify_all();
        break;
    case WakeKind::io_error:
        if (!c.error)
            c.error = error_from_errno(w.value);
        c.readers.notify_all();
        c.writers.notify_all();
        break;
    case WakeKind::connected:
        c.connecting = false;
        if (w.value != 0)
            c.error = error_from_errno(w.value);
        else
            c.local = w.local;
        c.writers.notify_all();
        break;
    case WakeKind::drained:
        c.output_pending = static_cast<std::size_t>(w.value);
        c.writers.notify_all();
        break;
    default:
        REPRISE_ASSERT_MSG(false, "a wake-up for a connection of another kind");
    }
}

} // namespace reprise
