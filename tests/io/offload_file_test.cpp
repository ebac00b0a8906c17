// Tests of offload() (results, exceptions, concurrency, deadlines, cancellation) and of files through the runtime.
//
// Every scenario runs live and then recorded, replayed and compared (run_main_task), except these.
// Scenarios that run live only, and why:
// - "offloaded jobs run concurrently while the loop keeps serving a sleeping task" and
//   "a task blocked in offload is cancelled with Errc::cancelled": a task polls until pool
//   threads have reached a Gate outside the runtime. How long that takes is a fact of real
//   threads that the trace does not hold, and replay runs no job, so nothing reaches the gate.
//
// Replay runs no offloaded job and no file step (their results come from the trace): a check
// of a job's own side effect says so with jobs_run(). Each run of a file scenario starts
// from an empty folder (empty_folder), as the live run leaves its files behind.
#include "../support/reprise_test.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <vector>

using namespace reprise;
using namespace reprise::test;

namespace {

/// A gate that offloaded jobs (on pool threads) wait at until a task opens it.
/// The wait is capped so that a broken test fails instead of hanging.
class Gate {
public:
    /// Blocks a pool thread until open(); false if it was never opened in time.
    bool pass() {
        std::unique_lock lock(mutex_);
        ++waiting_;
        return opened_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return open_; });
    }
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        opened_cv_.notify_all();
    }
    int waiting() {
        std::lock_guard lock(mutex_);
        return waiting_;
    }

private:
    std::mutex mutex_;
    std::condition_variable opened_cv_;
    bool open_ = false;
    int waiting_ = 0;
};

/// Whether offloaded jobs run in this run: live and recording yes; replay runs none
/// (their results come from the trace).
bool jobs_run() { return !Runtime::current()->replaying(); }

/// Removes everything in `dir` with plain calls outside the runtime: each run of a body
/// (live, recording, replay) starts from the empty folder the scenario expects.
void empty_folder(const TempDir& dir) {
    for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
        std::filesystem::remove_all(entry.path());
}

} // namespace

// --- offload ----------------------------------------------------------------------

TEST_CASE("offload returns the job's result to the waiting task") {
    run_main_task([] {
        REQUIRE(must(offload([] { return 6 * 7; }), "offload int") == 42);
        REQUIRE(must(offload([] { return std::string(100'000, 'z'); }), "offload string") == std::string(100'000, 'z'));
        std::atomic<bool> ran{false};
        must(offload([&ran] { ran = true; }), "offload void");
        REQUIRE(ran.load() == jobs_run());
        // Results are inputs (recorded, fed back in replay), so they need a Codec.
        auto pairs = must(offload([] { return std::vector<std::pair<int, std::string>>{{1, "a"}, {2, "b"}}; }),
                          "offload vector of pairs");
        REQUIRE(pairs.size() == 2);
        REQUIRE(pairs[1].second == "b");
    });
}

TEST_CASE("an exception thrown by an offloaded job is rethrown in the waiting task") {
    run_main_task([] {
        REQUIRE_THROWS_WITH(offload([]() -> int { throw std::runtime_error("disk on fire"); }), "disk on fire");
        // Live the job's own exception comes back; replay rethrows a std::runtime_error with
        // the recorded what(), as its type is not recorded (io/offload.hpp).
        auto void_job = [] { throw std::logic_error("void job"); };
        if (jobs_run())
            REQUIRE_THROWS_AS(offload(void_job), std::logic_error);
        else
            REQUIRE_THROWS_AS(offload(void_job), std::runtime_error);
        REQUIRE_THROWS_WITH(offload(void_job), "void job");
        // The pool and the loop carry on.
        REQUIRE(must(offload([] { return 1; }), "offload after a throw") == 1);
    });
}

TEST_CASE("offloaded jobs run concurrently while the loop keeps serving a sleeping task") {
    static constexpr int jobs = 4;
    run_live_only(
        "a task polls until the pool threads reach a Gate outside the runtime; replay runs no job",
        [] {
            Gate gate;
            std::vector<std::string> log;
            std::vector<Task<bool>> waiters;
            for (int i = 0; i < jobs; ++i) {
                waiters.push_back(spawn("job", [&, i] {
                    // Each job returns whether it saw all the jobs waiting at once.
                    bool all_at_once =
                        must(offload([&gate] { return gate.pass() && gate.waiting() == jobs; }), "offload");
                    log.push_back("job " + std::to_string(i) + " done");
                    return all_at_once;
                }));
            }
            auto ticker = spawn("ticker", [&] {
                // The loop serves this task while every pool thread is blocked.
                REQUIRE(eventually([&] { return gate.waiting() == jobs; }));
                log.push_back("all jobs running");
                gate.open();
            });
            for (Task<bool>& w : waiters)
                CHECK(w.join().value());
            ticker.join().value();
            REQUIRE(log.size() == jobs + 1);
            // The jobs could finish only after the ticker, running on the loop, opened the gate.
            CHECK(log.front() == "all jobs running");
            for (std::size_t i = 1; i < log.size(); ++i)
                CHECK(log[i].find("done") != std::string::npos);
        },
        with_offload_threads(jobs));
}

TEST_CASE("an offloaded job past its deadline gives timed_out, and later jobs still run") {
    // One pool thread: the later job can run only once the slow one finished.
    run_main_task(
        [] {
            Gate gate;
            std::atomic<bool> slow_finished{false};
            Result<int> slow = offload(
                [&] {
                    gate.pass();
                    slow_finished = true;
                    return 1;
                },
                20ms);
            REQUIRE(outcome(slow) == Errc::timed_out);
            REQUIRE_FALSE(slow_finished.load());
            gate.open();
            REQUIRE(must(offload([] { return 2; }, generous), "a later job") == 2);
            REQUIRE(slow_finished.load() == jobs_run());
            // A deadline that has already passed times out at once; the job still runs.
            std::atomic<bool> ran{false};
            REQUIRE(outcome(offload([&ran] { ran = true; }, Deadline(now()))) == Errc::timed_out);
            must(offload([] {}, generous), "a job behind it");
            REQUIRE(ran.load() == jobs_run());
        },
        with_offload_threads(1));
}

TEST_CASE("a task blocked in offload is cancelled with Errc::cancelled") {
    run_live_only(
        "a task polls until the pool thread reaches a Gate outside the runtime; replay runs no job",
        [] {
            Gate gate;
            auto waiter = spawn("waiter", [&] { return task_outcome(offload([&gate] { return gate.pass(); })); });
            REQUIRE(eventually([&] { return gate.waiting() == 1; }));
            REQUIRE_FALSE(waiter.done());
            waiter.cancel();
            CHECK(waiter.join().value().code == Errc::cancelled);
            gate.open();
            CHECK(must(offload([] { return 3; }, generous), "a job after the cancelled one") == 3);
        },
        with_offload_threads(1));
}

TEST_CASE("a task cancelled before it offloads gets Errc::cancelled and its job never runs") {
    // Outside the body so that it is checked once the runtime (and its pool) ended too;
    // no run of the body sets it unless the job wrongly ran.
    std::atomic<bool> ran{false};
    run_main_task([&] {
        auto waiter = spawn("waiter", [&] { return task_outcome(offload([&ran] { ran = true; })); });
        waiter.cancel();
        REQUIRE(waiter.join().value().code == Errc::cancelled);
        must(offload([] {}), "a later job");
        REQUIRE_FALSE(ran.load());
    });
    REQUIRE_FALSE(ran.load());
}

// --- whole files -----------------------------------------------------------------

TEST_CASE("files are written, read, appended, replaced atomically, renamed and removed") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        const std::string a = dir / "a.txt";
        const std::string b = dir / "b.txt";
        REQUIRE_FALSE(must(file_exists(a), "exists"));

        must(write_file(a, "hello"), "write_file");
        REQUIRE(must(file_exists(a), "exists"));
        REQUIRE(must(read_file(a), "read_file") == "hello");

        must(append_file(a, ", world", Durability::synced), "append_file");
        REQUIRE(must(read_file(a), "read_file") == "hello, world");

        must(write_file(a, "short", Durability::synced), "write_file replaces");
        REQUIRE(must(read_file(a), "read_file") == "short");

        must(write_file_atomic(a, "atomic contents"), "write_file_atomic");
        REQUIRE(must(read_file(a), "read_file") == "atomic contents");
        must(write_file_atomic(b, "new file"), "write_file_atomic of a new file");
        REQUIRE(must(read_file(b), "read_file") == "new file");
        REQUIRE_FALSE(must(file_exists(a + ".tmp"), "no temporary left behind"));

        must(rename_file(a, b), "rename_file over an existing file");
        REQUIRE_FALSE(must(file_exists(a), "exists"));
        REQUIRE(must(read_file(b), "read_file") == "atomic contents");

        must(remove_file(b), "remove_file");
        REQUIRE_FALSE(must(file_exists(b), "exists"));

        // Empty and binary contents round-trip.
        must(write_file(a, ""), "write empty");
        REQUIRE(must(read_file(a), "read empty").empty());
        const std::string binary = pattern(0, 70'000) + std::string(3, '\0');
        must(write_file(a, binary), "write binary");
        REQUIRE(must(read_file(a), "read binary") == binary);
    });
}

TEST_CASE("make_directories creates nested folders and accepts existing ones") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        const std::string nested = dir / "x/y/z";
        must(make_directories(nested), "make_directories");
        REQUIRE(must(file_exists(nested), "exists"));
        REQUIRE(must(file_exists(dir / "x/y"), "exists"));
        must(make_directories(nested), "make_directories again");
        must(write_file(nested + "/f", "in a folder"), "write_file");
        REQUIRE(must(read_file(nested + "/f"), "read_file") == "in a folder");
        // A path under a regular file cannot be a folder.
        REQUIRE_FALSE(make_directories(nested + "/f/sub").ok());
        REQUIRE_FALSE(must(file_exists(nested + "/f/sub"), "exists under a file"));
    });
}

TEST_CASE("operations on missing files fail with not_found") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        const std::string missing = dir / "missing";
        REQUIRE(outcome(read_file(missing)) == Errc::not_found);
        REQUIRE(outcome(remove_file(missing)) == Errc::not_found);
        REQUIRE(outcome(rename_file(missing, dir / "other")) == Errc::not_found);
        REQUIRE(outcome(File::open(missing, OpenMode::read)) == Errc::not_found);
        REQUIRE(outcome(File::open(missing, OpenMode::write)) == Errc::not_found);
        REQUIRE(outcome(write_file(dir / "no/such/folder", "x")) == Errc::not_found);
        REQUIRE(outcome(make_directories(dir / "made")) == Errc{});
    });
}

TEST_CASE("read_file refuses a file larger than max_bytes with limit") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        const std::string f = dir / "f";
        must(write_file(f, std::string(100, 'a')), "write_file");
        REQUIRE(outcome(read_file(f, 99)) == Errc::limit);
        REQUIRE(must(read_file(f, 100), "read_file at the limit").size() == 100);
        REQUIRE(outcome(read_file(f, 0)) == Errc::limit);
    });
}

TEST_CASE("a file write past its deadline still completes on the pool") {
    TempDir dir;
    run_main_task(
        [&] {
            empty_folder(dir);
            const std::string f = dir / "late";
            REQUIRE(outcome(write_file(f, "written anyway", Durability::buffered, Deadline(now()))) ==
                    Errc::timed_out);
            // One pool thread runs jobs in order: the read sees the write.
            REQUIRE(must(read_file(f), "read_file") == "written anyway");
        },
        with_offload_threads(1));
}

// --- File --------------------------------------------------------------------------

TEST_CASE("File reads and writes at offsets, appends, syncs, sizes and truncates") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        File f = must(File::open(dir / "data", OpenMode::read | OpenMode::write | OpenMode::create), "open");
        REQUIRE(f.is_open());
        REQUIRE(f.path() == dir / "data");
        REQUIRE(must(f.size(), "size") == 0);

        must(f.write_at(0, "hello"), "write_at 0");
        must(f.write_at(10, "world"), "write_at 10");
        REQUIRE(must(f.size(), "size") == 15);
        REQUIRE(must(f.read_at(0, 100), "read_at") == std::string("hello\0\0\0\0\0world", 15));
        REQUIRE(must(f.read_at(10, 3), "read_at middle") == "wor");
        // Past the end: fewer bytes, then none.
        REQUIRE(must(f.read_at(13, 100), "read_at across the end") == "ld");
        REQUIRE(must(f.read_at(15, 100), "read_at the end").empty());
        REQUIRE(must(f.read_at(1'000'000, 100), "read_at past the end").empty());

        must(f.write_at(2, "LL"), "overwrite");
        REQUIRE(must(f.read_at(0, 5), "read_at") == "heLLo");

        must(f.append("!"), "append");
        REQUIRE(must(f.size(), "size") == 16);
        REQUIRE(must(f.read_at(15, 1), "read appended") == "!");

        must(f.sync(), "sync");

        must(f.truncate(5), "truncate");
        REQUIRE(must(f.size(), "size") == 5);
        REQUIRE(must(f.read_at(0, 100), "read after truncate") == "heLLo");
        must(f.truncate(8), "truncate up");
        REQUIRE(must(f.read_at(0, 100), "read after growing") == std::string("heLLo\0\0\0", 8));

        f.close();
        REQUIRE_FALSE(f.is_open());
        REQUIRE(must(read_file(dir / "data"), "read_file") == std::string("heLLo\0\0\0", 8));
    });
}

TEST_CASE("File::open honours create, truncate, append and exclusive") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        const std::string p = dir / "f";
        must(write_file(p, "0123456789"), "write_file");

        // Without truncate the contents stay; with it they go.
        {
            File f = must(File::open(p, OpenMode::write), "open write");
            must(f.write_at(0, "ab"), "write_at");
        }
        REQUIRE(must(read_file(p), "read") == "ab23456789");
        {
            File f = must(File::open(p, OpenMode::write | OpenMode::truncate), "open truncate");
            REQUIRE(must(f.size(), "size") == 0);
        }
        REQUIRE(must(read_file(p), "read").empty());

        // Append mode writes at the end.
        must(write_file(p, "start"), "write_file");
        {
            File f = must(File::open(p, OpenMode::append), "open append");
            must(f.append("+one"), "append");
            must(f.append("+two"), "append");
        }
        REQUIRE(must(read_file(p), "read") == "start+one+two");

        // Exclusive creation fails on an existing file and works on a new one.
        Result<File> again = File::open(p, OpenMode::write | OpenMode::create | OpenMode::exclusive);
        REQUIRE_FALSE(again.ok());
        REQUIRE(again.error().sys_errno == EEXIST);
        File fresh = must(File::open(dir / "fresh", OpenMode::write | OpenMode::create | OpenMode::exclusive),
                          "open exclusive");
        must(fresh.write_at(0, "x"), "write_at");
        fresh.close();
        REQUIRE(must(read_file(dir / "fresh"), "read") == "x");

        // A read-only file refuses writes with an error, not a crash.
        File ro = must(File::open(p, OpenMode::read), "open read");
        REQUIRE_FALSE(ro.write_at(0, "nope").ok());
        REQUIRE(must(ro.read_at(0, 5), "read_at") == "start");
    });
}

TEST_CASE("read_at refuses more than the runtime's file read limit") {
    TempDir dir;
    run_main_task([&] {
        empty_folder(dir);
        File f = must(File::open(dir / "f", OpenMode::read | OpenMode::write | OpenMode::create), "open");
        REQUIRE(outcome(f.read_at(0, limits::file_read_bytes_max + 1)) == Errc::limit);
    });
}
