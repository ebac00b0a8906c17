// The recorder: one encoder on the loop thread, one writer thread, lossless and bounded, flushed on a crash.
#include "reprise/record/internal/recorder.hpp"

#include "reprise/io/internal/offload_state.hpp"
#include "reprise/io/internal/private_dirs.hpp"
#include "reprise/record/codec.hpp"
#include "reprise/runtime/internal/stack.hpp"
#include "reprise/runtime/limits.hpp"

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace reprise::detail {

static_assert(limits::file_read_bytes_max + 64 <= trace::record_payload_bytes_max,
              "a file read through the runtime is recorded as one record");
static_assert(limits::read_chunk_bytes <= trace::record_payload_bytes_max);
static_assert(limits::secure_random_bytes_max <= trace::record_payload_bytes_max);

Recorder::Recorder(RecorderConfig config) : config_(std::move(config)) {
    encoder_.set_base(config_.header.start_mono_ns, config_.header.start_wall_ns);
    now_mono_ns_ = config_.header.start_mono_ns;
}

std::string expand_trace_path(std::string_view pattern, std::string_view node, std::int64_t start_wall_ns,
                              long pid, std::uint64_t counter) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '%' || i + 1 == pattern.size()) {
            out += pattern[i];
            continue;
        }
        switch (pattern[++i]) {
        case 'p':
            out += std::to_string(pid);
            break;
        case 'n':
            out += node;
            break;
        case 'c':
            out += std::to_string(counter);
            break;
        case 't': {
            const std::time_t secs = static_cast<std::time_t>(start_wall_ns / 1'000'000'000);
            std::tm tm{};
            ::gmtime_r(&secs, &tm);
            char buf[32];
            std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
            out += buf;
            break;
        }
        case '%':
            out += '%';
            break;
        default:
            out += '%';
            out += pattern[i];
        }
    }
    return out;
}

namespace {

/// The trace name NAME as a pattern with %c (the next number), for a refusal's advice:
/// kv.trace -> kv.%c.trace.
std::string counted_pattern(const std::string& name) {
    return name.ends_with(".trace") ? name.substr(0, name.size() - 6) + ".%c.trace" : name + "-%c";
}

std::string human_bytes(std::uint64_t n) {
    if (n >= 10ull * 1024 * 1024 * 1024)
        return fmt::format("{} bytes ({} GiB)", n, n >> 30);
    if (n >= 10ull * 1024 * 1024)
        return fmt::format("{} bytes ({} MiB)", n, n >> 20);
    return fmt::format("{} bytes", n);
}

// The pattern with %n bound to this node (a % in the name doubled): a node's runs are its own, and
// another node recording into the same folder (reprise-raft's cluster) is never touched.
std::string bind_node(std::string_view pattern, std::string_view node) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '%' || i + 1 == pattern.size()) {
            out += pattern[i];
        } else if (pattern[++i] == 'n') {
            for (char ch : node)
                out += ch == '%' ? std::string_view("%%") : std::string_view(&ch, 1);
        } else {
            out += '%';
            out += pattern[i];
        }
    }
    return out;
}

// An error of the disk, not of the user: the program runs unrecorded rather than not at all.
bool is_disk_error(int error_number) {
    return error_number == ENOSPC || error_number == EDQUOT || error_number == EFBIG || error_number == EIO;
}

} // namespace

std::unique_ptr<Recorder> Recorder::open(RecorderConfig config, std::string& error, bool& unrecorded) {
    unrecorded = false;
    // A typo such as %C must not become a fixed name that refuses the next start.
    for (std::size_t i = 0; i < config.path.size(); ++i) {
        if (config.path[i] != '%')
            continue;
        if (i + 1 == config.path.size() || std::string_view("ptnc%").find(config.path[i + 1]) == std::string_view::npos) {
            error = fmt::format("--record={}: unknown escape '{}' (the escapes are %c the next number, %p the pid, "
                                "%t the start time, %n the node, %% a percent sign)",
                                config.path, config.path.substr(i, 2));
            return nullptr;
        }
        ++i;
    }
    // A name for a folder would become one, then refuse to be a trace ("Is a directory").
    if (config.path.ends_with('/')) {
        error = fmt::format("--record={}: a trace is a file: give its name after the folder (e.g. --record={}kv.%c.trace)",
                            config.path, config.path);
        return nullptr;
    }
    // %c is the next free number of the file name: in a folder's name it would stand for 1 at every
    // start, and the second start would find the name taken. Refused at the first start instead.
    if (const std::size_t last_slash = config.path.rfind('/'); last_slash != std::string::npos) {
        const std::string_view folder_part = std::string_view(config.path).substr(0, last_slash);
        for (std::size_t i = 0; i + 1 < folder_part.size(); ++i) {
            if (folder_part[i] != '%')
                continue;
            if (folder_part[i + 1] == 'c') {
                error = fmt::format("--record={}: %c must be in the trace's file name, not in a folder's name (it is "
                                    "the next free number among the folder's traces; e.g. --record=traces/kv.%c.trace)",
                                    config.path);
                return nullptr;
            }
            ++i;
        }
    }
    // The path is a pattern (%p pid, %t start time, %n node, %c the next counter, %%):
    // its folder is expanded once; its file name is expanded with %c the first number past the
    // highest of the pattern's earlier runs whose file can be created.
    const std::string pattern = config.path;
    const std::size_t slash = pattern.rfind('/');
    const long pid = static_cast<long>(::getpid());  // reprise-allow: env (the trace's name, %p)
    std::unique_ptr<Recorder> r(new Recorder(std::move(config)));
    RecorderConfig& c = r->config_;
    const std::string folder =
        slash == std::string::npos ? std::string()
                                   : expand_trace_path(pattern.substr(0, slash + (slash == 0 ? 1 : 0)), c.header.node,
                                                       c.header.start_wall_ns, pid, 1);
    const std::string name_pattern =
        bind_node(slash == std::string::npos ? pattern : pattern.substr(slash + 1), c.header.node);
    const bool counted = name_pattern.find("%c") != std::string::npos;
    const bool retention = c.keep_runs > 0 || c.keep_bytes > 0;

    // Earlier runs of the pattern (%c, %p and %t wildcards; %n this node), and which of them
    // retention removes (found by their lock and outcome files, never by reading their traces).
    std::vector<trace::OldRun> runs;
    trace::RetentionPlan plan;
    std::uint64_t first_counter = 1;
    if (retention || counted) {
        std::string why;
        runs = trace::find_runs(folder, name_pattern, &why);
        if (!why.empty())
            fmt::print(stderr, "reprise: retention: {}\n", why);
        for (const trace::OldRun& run : runs)
            if (run.counter && *run.counter < limits::trace_counter_max)
                first_counter = std::max(first_counter, *run.counter + 1);
    }
    // One run takes at most --record-max-bytes, else half of --record-keep-bytes, even when more is
    // free: a crashed run (kept whatever the budget) must not starve the runs after it.
    const std::uint64_t run_cap = c.keep_bytes == 0 ? c.max_bytes
                                  : c.max_bytes > 0  ? std::min(c.max_bytes, c.keep_bytes)
                                                     : c.keep_bytes / 2;
    if (retention) {
        plan = trace::plan_retention(runs, {.keep_runs = c.keep_runs, .keep_bytes = c.keep_bytes, .reserve_bytes = run_cap});
        const std::uint64_t room = std::min(plan.room_bytes, run_cap);
        if (c.keep_bytes > 0 && (plan.over_budget || room < limits::trace_run_bytes_min)) {
            unrecorded = true;
            error = fmt::format(
                "NOT RECORDING: the traces of {} that are kept whatever the budget (runs that crashed, exited "
                "non-zero, were cut off or are still being written) take {} of --record-keep-bytes={}, leaving {}, "
                "under the {} a run needs. "
                "Look at them (reprise info TRACE says why each is kept), remove those you no longer need. "
                "The program runs unrecorded.",
                pattern, human_bytes(plan.pinned_bytes), c.keep_bytes, human_bytes(plan.over_budget ? 0 : room),
                human_bytes(limits::trace_run_bytes_min));
            return nullptr;
        }
    }
    r->budget_bytes_ = c.max_bytes;
    r->budget_why_ = fmt::format("--record-max-bytes={}", c.max_bytes);
    if (c.keep_bytes > 0) {
        if (plan.room_bytes < run_cap) {
            r->budget_bytes_ = plan.room_bytes;
            r->budget_why_ = fmt::format("the room that --record-keep-bytes={} leaves beside the {} kept",
                                         c.keep_bytes, human_bytes(plan.kept_bytes));
        } else if (c.max_bytes == 0) {
            r->budget_bytes_ = run_cap;
            r->budget_why_ = fmt::format("half of --record-keep-bytes={}, one run's share", c.keep_bytes);
        }
    }

    if (!folder.empty()) {
        struct stat st {};
        if (::stat(folder.c_str(), &st) != 0) {  // reprise-allow: io (the trace's folder)
            if (const int e = make_private_directories(folder); e != 0) {
                error = fmt::format("cannot create the trace's folder {}: {}", folder, std::strerror(e));
                if (is_disk_error(e)) {
                    unrecorded = true;
                    error = fmt::format("NOT RECORDING: {}; serving unrecorded", error);
                }
                return nullptr;
            }
        }
    }
    // Old runs go once the new run holds its lock, or before its second try when the disk had no
    // room for its header. Each run's outcome file goes last, so a run half removed (a crash
    // meanwhile) still says it may go.
    bool removed = false;
    auto remove_old_runs = [&] {
        removed = true;
        for (std::size_t i : plan.remove) {
            bool all = true;
            for (const std::string& file : runs[i].files)
                if (::unlink(file.c_str()) != 0 && errno != ENOENT) {  // reprise-allow: io (retention of old traces)
                    all = false;
                    fmt::print(stderr, "reprise: retention: cannot remove {}: {}\n", file, std::strerror(errno));
                }
            // Said once per run, so that an operator can tell where a trace went.
            if (all)
                fmt::print(stderr, "reprise: retention: removed {} (clean run, {} KiB)\n",
                           runs[i].path.substr(runs[i].path.rfind('/') + 1), (runs[i].bytes + 1023) / 1024);
        }
    };
    for (std::uint64_t counter = first_counter;; ++counter) {
        c.path = expand_trace_path(pattern, c.header.node, c.header.start_wall_ns, pid, counter);
        if (r->open_file(error))
            break;
        if (is_disk_error(r->open_errno_) && !removed && !plan.remove.empty()) {
            remove_old_runs();
            if (r->open_file(error))
                break;
        }
        if (is_disk_error(r->open_errno_)) {
            // A full or failing disk never stops the service (a usage error, above, does).
            unrecorded = true;
            error = fmt::format("NOT RECORDING: {}; serving unrecorded", error);
            return nullptr;
        }
        if (!counted && r->open_errno_ == EEXIST && name_pattern.find("%t") != std::string::npos)
            error = fmt::format("trace {} exists: another run of --record={} started in the same second (%t names "
                                "the start to the second, so both runs name the same file), and reprise never "
                                "overwrites a trace; add %c to the file name (e.g. kv.%t.%c.trace) so that a run "
                                "takes the next free number",
                                c.path, pattern);
        else if (!counted && r->open_errno_ == EEXIST && name_pattern.find("%p") != std::string::npos)
            error = fmt::format("trace {} exists: an earlier run had the same pid (pids are reused, in containers "
                                "from 1 at every start), and reprise never overwrites a trace; add %c to the file "
                                "name (e.g. kv.%p.%c.trace) so that a run takes the next free number",
                                c.path);
        if (!counted || r->open_errno_ != EEXIST || counter >= first_counter + limits::trace_counter_max)
            return nullptr;
    }
    if (!r->special_) {
        r->outcome_path_ = trace::outcome_path(c.path);
        r->outcome_tmp_path_ = r->outcome_path_ + ".tmp";
    }
    if (!removed)
        remove_old_runs();
    r->writer_ = std::thread([raw = r.get()] { raw->writer_main(); });
    add_crash_hook(&Recorder::crash_flush, r.get());
    return r;
}

// Opens the next file (the trace, or its next segment) and writes its header.
bool Recorder::open_file(std::string& error) {
    const std::string path = file_path();
    // A trace is never truncated or overwritten (a restarted service must not destroy its
    // crash's trace), and holds every byte clients sent: created 0600. An existing device
    // or pipe (/dev/null, /dev/full) is written, not created.
    struct stat st {};
    const bool special = ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);  // reprise-allow: io (the trace file)
    // A new trace's name is taken while any file of an earlier trace of that name is left: the
    // other form (PATH beside PATH.0) or a later segment (PATH.1, which a reader would take as
    // this trace's continuation). Only its outcome file may be a leftover (below).
    if (segment_ == 0 && !special) {
        const std::string& name = config_.path;
        for (const std::string& other : {name, name + ".0", name + ".1"}) {
            // Only a regular file is an earlier trace's (a link or a device there is the user's doing).
            if (other == path || ::lstat(other.c_str(), &st) != 0 || !S_ISREG(st.st_mode))  // reprise-allow: io (the trace's name)
                continue;
            open_errno_ = EEXIST;
            error = fmt::format("trace {} exists (as {}): reprise never overwrites a trace (a restarted service must "
                                "not destroy its crash's trace); remove it, or record into a pattern with %c (the next "
                                "number), such as --record={} (docs/production.md)",
                                name, other, counted_pattern(name));
            return false;
        }
    }
    int fd = special ? ::open(path.c_str(), O_WRONLY | O_CLOEXEC)  // reprise-allow: io (the trace file)
                     : ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);  // reprise-allow: io (the trace file)
    if (fd < 0) {
        open_errno_ = errno;
        if (errno == EEXIST)
            error = fmt::format("trace {} exists: reprise never overwrites a trace (a restarted service must not "
                                "destroy its crash's trace); remove it, or record into a pattern with %c (the next "
                                "number), such as --record={} (docs/production.md)",
                                path, counted_pattern(config_.path));
        else
            error = fmt::format("cannot create trace {}: {}", path, std::strerror(errno));
        return false;
    }
    special_ = special;
    // The lock says "being written" to the tools and to retention until the recording closes
    // (a reader's shared lock is held for an instant: waiting for it is fine).
    if (!special) {
        while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
        }
        if (segment_ == 0)
            lock_fd_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    }
    // The name is this run's now (created O_EXCL, locked): an outcome file left by an earlier trace
    // of that name (its trace removed by hand, or retention stopped half-way) says how *that* run
    // ended, and would be read as this run's outcome were this run killed. It goes.
    if (!special && segment_ == 0) {
        const std::string outcome = trace::outcome_path(config_.path);
        ::unlink(outcome.c_str());                       // reprise-allow: io (a stale outcome file)
        ::unlink((outcome + ".tmp").c_str());            // reprise-allow: io (a stale outcome file)
    }
    trace::Header h = config_.header;
    h.segment = segment_;
    h.encrypted = config_.key.has_value();
    std::string header = trace::encode_header(h);
    if (!write_all(fd, header)) {
        open_errno_ = errno;
        error = fmt::format("cannot write the header of trace {}: {}", path, std::strerror(open_errno_));
        // A file we created goes (no empty trace is left behind), and so does a segment's name, so
        // that the trace's segments stop cleanly at the last complete one. A single-file path
        // may be a device: kept.
        if (!special || config_.segment_bytes > 0)
            ::unlink(path.c_str());  // reprise-allow: io (the trace file)
        ::close(fd);
        if (segment_ == 0 && lock_fd_ >= 0) {
            ::close(lock_fd_);
            lock_fd_ = -1;
        }
        return false;
    }
    file_bytes_ = header.size();
    file_header_bytes_ = header.size();
    if (segment_ == 0)
        header_bytes_ = header.size();
    total_bytes_.fetch_add(header.size());
    sealer_ = std::make_unique<trace::ChunkSealer>(trace::encode_header_body(h), config_.key ? &*config_.key : nullptr);
    int old = fd_.exchange(fd);
    if (old >= 0) {
        if (config_.fsync != FsyncPolicy::never)
            ::fsync(old);
        ::close(old);
    }
    return true;
}

Recorder::~Recorder() {
    if (!ended_)
        end(-1);
    remove_crash_hook(&Recorder::crash_flush, this);
}

trace::Outcome::Recording Recorder::recording_state() const noexcept {
    if (budget_hit_.load())
        return trace::Outcome::Recording::budget;
    return failed_.load() ? trace::Outcome::Recording::failed : trace::Outcome::Recording::complete;
}

// The outcome file is written before the lock goes: whoever sees no lock finds it.
void Recorder::close_recording(trace::Outcome::Ended ended, int exit_code, int signal) noexcept {
    const trace::Outcome::Recording recording = recording_state();
    const int fd = fd_.exchange(-1);
    if (fd >= 0) {
        if (config_.fsync != FsyncPolicy::never)
            ::fsync(fd);
        ::close(fd);
    }
    if (!special_ && !outcome_path_.empty())
        (void)trace::write_outcome(outcome_path_.c_str(), outcome_tmp_path_.c_str(),
                                   trace::Outcome{.ended = ended,
                                                  .exit_code = exit_code,
                                                  .signal = signal,
                                                  .recording = recording,
                                                  .stored_bytes = total_bytes_.load(),
                                                  .budget_bytes = budget_bytes_,
                                                  .start_wall_ns = config_.header.start_wall_ns});
    if (lock_fd_ >= 0) {
        ::close(lock_fd_);
        lock_fd_ = -1;
    }
}

bool Recorder::write_all(int fd, std::string_view bytes) noexcept {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());  // reprise-allow: io (the trace file)
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO;  // no progress and no error: never retry forever
        if (n <= 0)
            return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// --- the loop thread's side -------------------------------------------------------

void Recorder::committed() {
    ++records_;
    committed_bytes_ = encoder_.payload().size();
    if (chunk_first_mono_ns_ < 0)
        chunk_first_mono_ns_ = now_mono_ns_;
    if (committed_bytes_ >= trace::chunk_bytes_target)
        seal();
}

void Recorder::tick(std::int64_t mono_ns, std::int64_t wall_ns) {
    idle(mono_ns);
    encoder_.put(trace::Tick{.mono_ns = mono_ns, .wall_ns = wall_ns});
    committed();
}

// A chunk older than the seal interval goes to disk now: a process killed
// without warning loses at most that much.
void Recorder::idle(std::int64_t mono_ns) {
    now_mono_ns_ = mono_ns;
    if (seal_deadline_ns() >= 0 && mono_ns >= seal_deadline_ns())
        seal();
}

void Recorder::wakeup(const Wakeup& w, std::string_view data) {
    REPRISE_ASSERT_MSG(data.size() <= trace::record_payload_bytes_max, "a wake-up's data is larger than a record may be");
    REPRISE_ASSERT_MSG(w.kind != WakeKind::accepted, "an accepted connection is recorded by accepted()");
    std::int64_t trailer_bytes = 0;
    if (w.kind == WakeKind::connected) {
        trace::Connected r{.connection = w.handle, .error = w.value, .peer = {}, .local = {}};
        if (w.value == 0) {
            r.peer = w.peer;
            r.local = w.local;
        }
        encoder_.put(r);
    } else if (w.kind == WakeKind::bytes_read && !secrets_.empty() &&
               trace::redact_read(data, secrets_, redacted_, trailer_bytes)) {
        REPRISE_ASSERT_MSG(redacted_.size() <= trace::record_payload_bytes_max, "a redacted read is larger than a record may be");
        encoder_.put(trace::Wake{.wake = w.kind, .handle = w.handle, .value = trailer_bytes, .data = redacted_});
    } else {
        encoder_.put(trace::Wake{.wake = w.kind, .handle = w.handle, .value = w.value, .data = data});
    }
    committed();
}

void Recorder::secret(std::string_view name, std::string_view bytes) {
    record_secret(name, bytes, trace::secret_value(bytes));
}

void Recorder::record_secret(std::string_view name, std::string_view bytes, std::string_view value) {
    REPRISE_ASSERT_MSG(secrets_.size() < limits::secrets_max, "a runtime reads at most limits::secrets_max secrets");
    REPRISE_ASSERT(trace::secret_matches(value, bytes));
    encoder_.put(trace::Input{.input = trace::InputKind::secret, .name = name, .value = value});
    committed();
    secrets_.emplace_back(bytes);
}

void Recorder::accepted(const Wakeup& w, std::uint64_t connection) {
    encoder_.put(trace::Accepted{.listener = w.handle, .connection = connection, .peer = w.peer, .local = w.local});
    committed();
}

// A partial flush: recorded only when the kernel left something (the common full send
// costs no record). The name is the connection's id, the value the bytes left (u64).
std::size_t Recorder::output_left(std::uint64_t connection, std::size_t left) {
    if (left == 0)
        return 0;
    const std::string name = std::to_string(connection);
    const std::string value = encode_value<std::uint64_t>(left);
    encoder_.put(trace::Input{.input = trace::InputKind::output_left, .name = name, .value = value});
    committed();
    return left;
}

void Recorder::annotation(const trace::Annotation& a) {
    encoder_.put(a);
    committed();
}

void Recorder::offload_done(const Wakeup& w, std::string_view, OffloadState& request) {
    wakeup(w, request.result_bytes());
}

std::string Recorder::input(trace::InputKind kind, std::string_view name, const std::function<std::string()>& produce) {
    std::string value = produce();
    REPRISE_ASSERT_MSG(value.size() <= trace::record_payload_bytes_max, "an input is larger than a record may be");
    encoder_.put(trace::Input{.input = kind, .name = name, .value = value});
    committed();
    return value;
}

void Recorder::output(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes) {
    output_bytes(kind, handle, bytes, config_.full_outputs);
}

void Recorder::output_bytes(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes, bool full_bytes) {
    // An output holding a secret whole (a client echoing the password) keeps its digest only.
    std::string_view full = full_bytes && bytes.size() <= trace::record_payload_bytes_max &&
                                    (secrets_.empty() || !trace::holds_secret(bytes, secrets_))
                                ? bytes
                                : std::string_view{};
    encoder_.put(trace::Output{
        .output = kind, .handle = handle, .length = bytes.size(), .digest = trace::digest64(bytes), .bytes = full});
    committed();
}

void Recorder::spawn(std::uint64_t id, std::string_view name) {
    encoder_.put(trace::Spawn{.task = id, .name = name});
    committed();
}

void Recorder::end(int exit_code) {
    if (ended_)
        return;
    ended_ = true;
    encoder_.put(trace::End{.exit_code = exit_code});
    committed();
    finish_writing();
    close_recording(trace::Outcome::Ended::exited, exit_code, 0);
}

void Recorder::finish_writing() {
    seal();
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_.notify_all();
    if (writer_.joinable())
        writer_.join();
}

void Recorder::cut_off() {
    if (ended_)
        return;
    ended_ = true;
    finish_writing();
    close_recording(trace::Outcome::Ended::cut_off, 0, 0);
}

void Recorder::diverge(std::string_view, std::string_view) {
    assert_fail("replaying()", __FILE__, __LINE__, "the recorder never diverges");
}

void Recorder::seal() {
    if (committed_bytes_ == 0)
        return;
    // The payload moves to the writer, which frames it (length, CRC) off the loop.
    Sealed chunk{.payload = {}, .records_through = records_};
    if (committed_bytes_ == encoder_.payload().size()) {
        chunk.payload.swap(encoder_.payload());
        encoder_.payload().reserve(trace::chunk_bytes_target + 4096);
    } else {
        chunk.payload.assign(encoder_.payload(), 0, committed_bytes_);
        encoder_.payload().erase(0, committed_bytes_);
    }
    committed_bytes_ = 0;
    chunk_first_mono_ns_ = -1;
    std::unique_lock lock(mutex_);
    // Lossless: when the writer is this far behind, the loop waits for the disk.
    space_.wait(lock, [&] { return queued_bytes_ < config_.buffer_bytes_max || failed_.load(); });
    if (failed_.load())
        return;
    queued_bytes_ += chunk.payload.size();
    chunks_.push_back(std::move(chunk));
    chunks_unwritten_.fetch_add(1);
    lock.unlock();
    work_.notify_one();
}

// --- the writer thread --------------------------------------------------------------

void Recorder::writer_main() {
    std::unique_lock lock(mutex_);
    for (;;) {
        work_.wait(lock, [&] { return stopping_ || !chunks_.empty(); });
        if (chunks_.empty())
            return;
        Sealed chunk = std::move(chunks_.front());
        chunks_.pop_front();
        // Behind by more than a quarter of the buffer: this chunk goes uncompressed, so
        // the writer catches up rather than the loop waiting for it.
        const bool compress = config_.compress && queued_bytes_ <= config_.buffer_bytes_max / 4;
        lock.unlock();
        // After a failure the chunks still queued are dropped: nothing may follow a gap.
        if (!failed_.load())
            write_sealed(chunk, compress);
        chunks_unwritten_.fetch_sub(1);
        lock.lock();
        queued_bytes_ -= chunk.payload.size();
        space_.notify_all();
    }
}

// Writes one sealed chunk, starting the next segment first when it would not fit.
// The segment limit counts the chunk as stored (framed, compressed, sealed); a chunk is
// sealed for the file it goes to, so one that starts a new segment is sealed again.
void Recorder::write_sealed(const Sealed& chunk, bool compress) {
    framed_.clear();
    sealer_->seal(chunk.payload, chunk_index_.load(), compress, framed_);
    // Not from a file that holds no chunk yet: a chunk larger than the limit gets a segment of its own.
    const bool next_segment = config_.segment_bytes > 0 && file_bytes_ + framed_.size() > config_.segment_bytes &&
                              file_bytes_ > file_header_bytes_;
    // The budget counts every file as stored; a new segment's header is as large as the first's
    // (give or take its number's bytes).
    if (budget_bytes_ > 0 &&
        total_bytes_.load() + framed_.size() + (next_segment ? header_bytes_ + 8 : 0) > budget_bytes_) {
        budget_hit_.store(true);
        stop_writing(fmt::format("the trace reached its budget of {} ({})", human_bytes(budget_bytes_), budget_why_));
        // Said now, atomically: a run killed later still reads as stopped at its budget. Its exit or
        // crash, if the process gets to it, replaces this.
        if (!special_ && !outcome_path_.empty())
            (void)trace::write_outcome(outcome_path_.c_str(), outcome_tmp_path_.c_str(),
                                       trace::Outcome{.ended = trace::Outcome::Ended::cut_off,
                                                      .exit_code = 0,
                                                      .signal = 0,
                                                      .recording = trace::Outcome::Recording::budget,
                                                      .stored_bytes = total_bytes_.load(),
                                                      .budget_bytes = budget_bytes_,
                                                      .start_wall_ns = config_.header.start_wall_ns});
        return;
    }
    if (next_segment) {
        ++segment_;
        std::string error;
        if (!open_file(error)) {
            stop_writing(error);
            return;
        }
        framed_.clear();
        sealer_->seal(chunk.payload, chunk_index_.load(), compress, framed_);
    }
    const int fd = fd_.load();
    if (!write_all(fd, framed_)) {
        const int error_number = errno;
        stop_writing(fmt::format("writing the trace {} failed: {}", file_path(), std::strerror(error_number)));
        return;
    }
    chunk_index_.fetch_add(1);
    file_bytes_ += framed_.size();
    total_bytes_.fetch_add(framed_.size());
    stored_bytes_.fetch_add(framed_.size());
    records_written_ = chunk.records_through;
    if (config_.fsync == FsyncPolicy::every_chunk && ::fsync(fd) != 0) {
        const int error_number = errno;
        stop_writing(fmt::format("syncing the trace {} failed: {}", file_path(), std::strerror(error_number)));
    }
}

// A write failed (disk full, file too large, I/O error): the trace is cut back to its
// last complete chunk, so that it reads as cut off there rather than damaged, and says
// so once, loudly. The loop stops handing over chunks; the program goes on unrecorded.
void Recorder::stop_writing(std::string_view what) {
    if (failed_.exchange(true))
        return;
    const int fd = fd_.load();
    const bool cut = fd >= 0 && ::ftruncate(fd, static_cast<off_t>(file_bytes_)) == 0;
    fmt::print(stderr,
               "reprise: RECORDING STOPPED: {}; the trace ends before record {} ({}, {}). "
               "The program goes on unrecorded.\n",
               what, records_written_,
               records_written_ == 0 ? std::string("it holds no record")
                                     : fmt::format("it holds events #0 to #{}", records_written_ - 1),
               cut ? "in complete chunks" : "its last chunk may be cut short: it could not be truncated");
    std::fflush(stderr);
}

std::string Recorder::file_path() const {
    return config_.segment_bytes > 0 ? fmt::format("{}.{}", config_.path, segment_) : config_.path;
}

// --- the crash path -------------------------------------------------------------------

// Runs inside a fatal signal handler: flushes the records, then writes the outcome file (the
// signal), without allocating. The lock goes with the process.
void Recorder::crash_flush(void* arg) noexcept {
    auto* self = static_cast<Recorder*>(arg);
    if (self->ended_)
        return;
    if (!self->failed_.load() && !self->crash_flushed_.exchange(true))
        self->crash_flush_records();
    self->ended_ = true;
    const trace::Outcome::Recording recording = self->recording_state();
    if (!self->special_ && !self->outcome_path_.empty())
        (void)trace::write_outcome(self->outcome_path_.c_str(), self->outcome_tmp_path_.c_str(),
                                   trace::Outcome{.ended = trace::Outcome::Ended::crashed,
                                                  .exit_code = 0,
                                                  .signal = crash_signal(),
                                                  .recording = recording,
                                                  .stored_bytes = self->total_bytes_.load(),
                                                  .budget_bytes = self->budget_bytes_,
                                                  .start_wall_ns = self->config_.header.start_wall_ns});
}

// Lets the writer finish the sealed chunks (bounded wait), then writes the records encoded since.
void Recorder::crash_flush_records() noexcept {
    while (chunks_unwritten_.load() > 0 && crash_wait_step()) {
    }
    int fd = fd_.load();
    char* payload = encoder_.payload().data();
    const std::size_t n = committed_bytes_;
    if (fd < 0 || n == 0 || chunks_unwritten_.load() > 0 || !sealer_)
        return;
    // Within the budget, as every chunk (its framing is a few dozen bytes).
    if (budget_bytes_ > 0 && total_bytes_.load() + n + 64 > budget_bytes_) {
        budget_hit_.store(true);
        return;
    }
    // The writer is idle (nothing unwritten), so its sealer, chunk index and count of
    // complete bytes hold. The chunk goes uncompressed, but sealed when the trace is:
    // the payload is encrypted in place (the process is dying; nothing reads it after).
    trace::SealedInPlace sealed;
    if (!sealer_->seal_in_place(payload, n, chunk_index_.load(), sealed))
        return;
    auto bytes = [](const void* p, std::size_t len) { return std::string_view(static_cast<const char*>(p), len); };
    bool ok = write_all(fd, bytes(sealed.frame, sizeof sealed.frame));
    if (ok && sealed.encrypted)
        ok = write_all(fd, bytes(sealed.nonce, sizeof sealed.nonce));
    ok = ok && write_all(fd, bytes(payload, n));
    if (ok && sealed.encrypted)
        ok = write_all(fd, bytes(sealed.tag, sizeof sealed.tag));
    if (!ok) {
        // The write failed: the trace stops at its last complete chunk, and the outcome says so.
        (void)::ftruncate(fd, static_cast<off_t>(file_bytes_));
        failed_.store(true);
    } else {
        total_bytes_.fetch_add(sizeof sealed.frame + n + (sealed.encrypted ? sizeof sealed.nonce + sizeof sealed.tag : 0));
    }
    ::fsync(fd);
    // Written (and, sealed, encrypted in place): crash_flushed_ keeps a second call from writing it
    // again; the recording is complete up to the crash, not failed.
    committed_bytes_ = 0;
}

} // namespace reprise::detail
