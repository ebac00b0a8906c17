// Mode wiring: which backend and journal a runtime gets from its Options (live, record,
// replay, or replay and record again). It sits above the core, the one place that knows
// every mode; the core only calls it.
#include "reprise/replay/internal/replayer.hpp"

#include "reprise/io/file_world.hpp"
#include "reprise/record/internal/build_id.hpp"
#include "reprise/record/internal/recorder.hpp"

#include <fmt/core.h>

#include <filesystem>
#include <stdexcept>

namespace reprise::detail {

void wire_modes(Runtime::Impl& rt) {
    Replayer* replayer_ptr = nullptr;
    if (!rt.options.replay_path.empty()) {
        // Replay: the trace is the backend and the journal; seed and name come from it.
        std::string error;
        std::optional<trace::TraceKey> key;
        if (!rt.options.trace_key_path.empty()) {
            auto loaded = trace::load_trace_key(rt.options.trace_key_path, error);
            if (!loaded.ok())
                throw std::runtime_error(error);
            key = *loaded;
        }
        auto reader = trace::Reader::open(rt.options.replay_path, &error, key ? &*key : nullptr);
        if (!reader.ok())
            throw std::runtime_error(error);
        const trace::Header& h = reader->header();
        const std::string program = rt.options.program_name.empty() && !rt.options.argv.empty()
                                        ? program_name_from(rt.options.argv[0])
                                        : rt.options.program_name;
        // "The same program" is the same program name; another build of it replays (and
        // may diverge where it changed), another program is refused before it starts.
        if (!h.program.empty() && !program.empty() && h.program != program) {
            const std::string what = fmt::format("{} was recorded by program '{}', not '{}'", rt.options.replay_path,
                                                 h.program, program);
            if (!rt.options.replay_any_program)
                throw std::runtime_error(fmt::format("{}: replay it with '{}'{}, or give --replay-any-program to replay "
                                                     "it with this one anyway",
                                                     what, h.program,
                                                     h.executable.empty() ? "" : fmt::format(" ({})", h.executable)));
            fmt::print(stderr, "reprise: note: {}: replayed anyway (--replay-any-program); expect a divergence\n", what);
        }
        const std::string build = executable_build_id();
        // A trace recorded inside another executable (a simulator hosting the program) carries that
        // executable's build id: comparing it with this one's says nothing.
        const bool hosted = !h.executable.empty() &&
                            std::filesystem::path(h.executable).filename() != std::filesystem::path(executable_path()).filename();
        if (hosted)
            fmt::print(stderr, "reprise: note: {} was recorded inside {} (program '{}'): build ids not compared\n",
                       rt.options.replay_path, h.executable, h.program.empty() ? program : h.program);
        else if (!h.build_id.empty() && !build.empty() && h.build_id != build)
            fmt::print(stderr,
                       "reprise: note: this is another build of '{}' than the one that recorded {} (this build's id "
                       "{}, the recording's {}): a divergence may come from the change\n",
                       h.program.empty() ? program : h.program, rt.options.replay_path, build.substr(0, 12),
                       h.build_id.substr(0, 12));
        rt.seed = reader->header().seed;
        rt.prng = Prng(rt.seed);
        rt.options.node_name = reader->header().node;
        rt.recorded_argv = reader->header().argv;
        auto replayer = std::make_unique<Replayer>(
            rt, std::move(*reader),
            ReplayConfig{.speed = rt.options.replay_speed,
                         .break_at = rt.options.break_at,
                         .mark_stdio = rt.options.mark_stdio,
                         .key = key ? std::make_shared<const trace::TraceKey>(*key) : nullptr});
        rt.journal = replayer_ptr = replayer.get();
        rt.backend = std::move(replayer);
    } else if (rt.options.backend_source) {
        rt.backend = rt.options.backend_source->make_backend(rt);
    } else {
        rt.backend = make_live_backend(rt.options.offload_threads, rt.options.live_world,
                                       rt.options.file_world ? rt.options.file_world : real_file_world());
    }
    rt.backend->read_clock(rt.now_ns, rt.wall_ns);
    if (!rt.options.record_path.empty()) {
        // Replaying too (a re-recording): the header is the replayed trace's (node,
        // argv, seed, start times), so that the new trace compares equal to it.
        std::error_code ec;
        if (replayer_ptr && (rt.options.record_path == rt.options.replay_path ||
                             std::filesystem::equivalent(rt.options.record_path, rt.options.replay_path, ec)))
            throw std::runtime_error(fmt::format("cannot record into {}: it is the trace being replayed",
                                                 rt.options.record_path));
        RecorderConfig config;
        config.path = rt.options.record_path;
        if (replayer_ptr) {
            // Who wrote it is this process: the rest is the replayed trace's.
            config.header = replayer_ptr->header();
            config.header.executable = executable_path();
            config.header.working_directory = working_directory();
            config.header.runtime_version = REPRISE_VERSION;
            config.header.build_id = executable_build_id();
            config.header.segment = 0;
            config.header.encrypted = false;
        } else {
            config.header = trace::Header{
                .node = rt.options.node_name,
                .program = rt.options.program_name.empty() && !rt.options.argv.empty()
                               ? program_name_from(rt.options.argv[0])
                               : rt.options.program_name,
                .argv = rt.options.argv,
                .executable = executable_path(),
                .working_directory = working_directory(),
                .seed = rt.seed,
                .start_mono_ns = rt.now_ns,
                .start_wall_ns = rt.wall_ns,
                .runtime_version = REPRISE_VERSION,
                .build_id = executable_build_id(),
            };
        }
        config.fsync = rt.options.record_fsync_every_chunk ? FsyncPolicy::every_chunk : FsyncPolicy::at_end;
        config.segment_bytes = rt.options.record_segment_bytes;
        config.full_outputs = rt.options.record_full_outputs;
        config.compress = rt.options.record_compress;
        config.keep_runs = rt.options.record_keep_runs;
        config.keep_bytes = rt.options.record_keep_bytes;
        config.max_bytes = rt.options.record_max_bytes;
        if (!rt.options.trace_key_path.empty()) {
            std::string error;
            auto key = trace::load_trace_key(rt.options.trace_key_path, error);
            if (!key.ok())
                throw std::runtime_error(error);
            config.key = *key;
        }
        std::string error;
        bool unrecorded = false;
        auto rec = Recorder::open(std::move(config), error, unrecorded);
        if (!rec && unrecorded) {
            // Retention keeps what it must and the budget is full: the service runs, unrecorded.
            fmt::print(stderr, "reprise: {}\n", error);
            std::fflush(stderr);
            return;
        }
        if (!rec)
            throw std::runtime_error(error);
        if (replayer_ptr)
            rt.recorder = std::make_unique<Rerecorder>(*replayer_ptr, std::move(rec));
        else
            rt.recorder = std::move(rec);
        rt.journal = rt.recorder.get();
    }
}

} // namespace reprise::detail
