// Tests of offload() (results, exceptions, concurrency, deadlines, cancellation) and of files through the runtime.
#include "io_test_support.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
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

} // namespace

// --- offload ----------------------------------------------------------------------

TEST_CASE("offload returns the job's result to the waiting task") {
    Runtime rt;
    rt.run([&] {
        CHECK(take(offload([] { return 6 * 7; }), "offload int") == 42);
        CHECK(take(offload([] { return std::string(100'000, 'z'); }), "offload string") == std::string(100'000, 'z'));
        std::atomic<bool> ran{false};
        take(offload([&ran] { ran = true; }), "offload void");
        CHECK(ran.load());
        // Results are inputs (recorded, fed back in replay), so they need a Codec.
        auto pairs = take(offload([] { return std::vector<std::pair<int, std::string>>{{1, "a"}, {2, "b"}}; }),
                          "offload vector of pairs");
        REQUIRE(pairs.size() == 2);
        CHECK(pairs[1].second == "b");
        return 0;
    });
}

TEST_CASE("an exception thrown by an offloaded job is rethrown in the waiting task") {
    Runtime rt;
    rt.run([&] {
        CHECK_THROWS_WITH(offload([]() -> int { throw std::runtime_error("disk on fire"); }), "disk on fire");
        CHECK_THROWS_AS(offload([] { throw std::logic_error("void job"); }), std::logic_error);
        // The pool and the loop carry on.
        CHECK(take(offload([] { return 1; }), "offload after a throw") == 1);
        return 0;
    });
}

TEST_CASE("offloaded jobs run concurrently while the loop keeps serving a sleeping task") {
    static constexpr int jobs = 4;
    Runtime rt(with_offload_threads(jobs));
    Gate gate;
    std::vector<std::string> log;
    rt.run([&] {
        std::vector<Task<bool>> waiters;
        for (int i = 0; i < jobs; ++i) {
            waiters.push_back(spawn("job", [&, i] {
                // Each job returns whether it saw all the jobs waiting at once.
                bool all_at_once = take(offload([&gate] { return gate.pass() && gate.waiting() == jobs; }), "offload");
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
        return 0;
    });
    REQUIRE(log.size() == jobs + 1);
    // The jobs could finish only after the ticker, running on the loop, opened the gate.
    CHECK(log.front() == "all jobs running");
    for (std::size_t i = 1; i < log.size(); ++i)
        CHECK(log[i].find("done") != std::string::npos);
}

TEST_CASE("an offloaded job past its deadline gives timed_out, and later jobs still run") {
    // One pool thread: the later job can run only once the slow one finished.
    Runtime rt(with_offload_threads(1));
    Gate gate;
    std::atomic<bool> slow_finished{false};
    rt.run([&] {
        Result<int> slow = offload(
            [&] {
                gate.pass();
                slow_finished = true;
                return 1;
            },
            20ms);
        CHECK(outcome(slow) == Errc::timed_out);
        CHECK_FALSE(slow_finished.load());
        gate.open();
        CHECK(take(offload([] { return 2; }, generous), "a later job") == 2);
        CHECK(slow_finished.load());
        // A deadline that has already passed times out at once; the job still runs.
        std::atomic<bool> ran{false};
        CHECK(outcome(offload([&ran] { ran = true; }, Deadline(now()))) == Errc::timed_out);
        take(offload([] {}, generous), "a job behind it");
        CHECK(ran.load());
        return 0;
    });
}

TEST_CASE("a task blocked in offload is cancelled with Errc::cancelled") {
    Runtime rt(with_offload_threads(1));
    Gate gate;
    rt.run([&] {
        auto waiter = spawn("waiter", [&] { return task_outcome(offload([&gate] { return gate.pass(); })); });
        REQUIRE(eventually([&] { return gate.waiting() == 1; }));
        REQUIRE_FALSE(waiter.done());
        waiter.cancel();
        CHECK(waiter.join().value().code == Errc::cancelled);
        gate.open();
        CHECK(take(offload([] { return 3; }, generous), "a job after the cancelled one") == 3);
        return 0;
    });
}

TEST_CASE("a task cancelled before it offloads gets Errc::cancelled and its job never runs") {
    Runtime rt;
    std::atomic<bool> ran{false};
    rt.run([&] {
        auto waiter = spawn("waiter", [&] { return task_outcome(offload([&ran] { ran = true; })); });
        waiter.cancel();
        CHECK(waiter.join().value().code == Errc::cancelled);
        take(offload([] {}), "a later job");
        return 0;
    });
    CHECK_FALSE(ran.load());
}

// --- whole files -----------------------------------------------------------------

TEST_CASE("files are written, read, appended, replaced atomically, renamed and removed") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        const std::string a = dir / "a.txt";
        const std::string b = dir / "b.txt";
        CHECK_FALSE(take(file_exists(a), "exists"));

        take(write_file(a, "hello"), "write_file");
        CHECK(take(file_exists(a), "exists"));
        CHECK(take(read_file(a), "read_file") == "hello");

        take(append_file(a, ", world", Durability::synced), "append_file");
        CHECK(take(read_file(a), "read_file") == "hello, world");

        take(write_file(a, "short", Durability::synced), "write_file replaces");
        CHECK(take(read_file(a), "read_file") == "short");

        take(write_file_atomic(a, "atomic contents"), "write_file_atomic");
        CHECK(take(read_file(a), "read_file") == "atomic contents");
        take(write_file_atomic(b, "new file"), "write_file_atomic of a new file");
        CHECK(take(read_file(b), "read_file") == "new file");
        CHECK_FALSE(take(file_exists(a + ".tmp"), "no temporary left behind"));

        take(rename_file(a, b), "rename_file over an existing file");
        CHECK_FALSE(take(file_exists(a), "exists"));
        CHECK(take(read_file(b), "read_file") == "atomic contents");

        take(remove_file(b), "remove_file");
        CHECK_FALSE(take(file_exists(b), "exists"));

        // Empty and binary contents round-trip.
        take(write_file(a, ""), "write empty");
        CHECK(take(read_file(a), "read empty").empty());
        const std::string binary = pattern(0, 70'000) + std::string(3, '\0');
        take(write_file(a, binary), "write binary");
        CHECK(take(read_file(a), "read binary") == binary);
        return 0;
    });
}

TEST_CASE("make_directories creates nested folders and accepts existing ones") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        const std::string nested = dir / "x/y/z";
        take(make_directories(nested), "make_directories");
        CHECK(take(file_exists(nested), "exists"));
        CHECK(take(file_exists(dir / "x/y"), "exists"));
        take(make_directories(nested), "make_directories again");
        take(write_file(nested + "/f", "in a folder"), "write_file");
        CHECK(take(read_file(nested + "/f"), "read_file") == "in a folder");
        // A path under a regular file cannot be a folder.
        CHECK_FALSE(make_directories(nested + "/f/sub").ok());
        CHECK_FALSE(take(file_exists(nested + "/f/sub"), "exists under a file"));
        return 0;
    });
}

TEST_CASE("operations on missing files fail with not_found") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        const std::string missing = dir / "missing";
        CHECK(outcome(read_file(missing)) == Errc::not_found);
        CHECK(outcome(remove_file(missing)) == Errc::not_found);
        CHECK(outcome(rename_file(missing, dir / "other")) == Errc::not_found);
        CHECK(outcome(File::open(missing, OpenMode::read)) == Errc::not_found);
        CHECK(outcome(File::open(missing, OpenMode::write)) == Errc::not_found);
        CHECK(outcome(write_file(dir / "no/such/folder", "x")) == Errc::not_found);
        CHECK(outcome(make_directories(dir / "made")) == Errc{});
        return 0;
    });
}

TEST_CASE("read_file refuses a file larger than max_bytes with limit") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        const std::string f = dir / "f";
        take(write_file(f, std::string(100, 'a')), "write_file");
        CHECK(outcome(read_file(f, 99)) == Errc::limit);
        CHECK(take(read_file(f, 100), "read_file at the limit").size() == 100);
        CHECK(outcome(read_file(f, 0)) == Errc::limit);
        return 0;
    });
}

TEST_CASE("a file write past its deadline still completes on the pool") {
    TempDir dir;
    Runtime rt(with_offload_threads(1));
    rt.run([&] {
        const std::string f = dir / "late";
        CHECK(outcome(write_file(f, "written anyway", Durability::buffered, Deadline(now()))) == Errc::timed_out);
        // One pool thread runs jobs in order: the read sees the write.
        CHECK(take(read_file(f), "read_file") == "written anyway");
        return 0;
    });
}

// --- File --------------------------------------------------------------------------

TEST_CASE("File reads and writes at offsets, appends, syncs, sizes and truncates") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        File f = take(File::open(dir / "data", OpenMode::read | OpenMode::write | OpenMode::create), "open");
        CHECK(f.is_open());
        CHECK(f.path() == dir / "data");
        CHECK(take(f.size(), "size") == 0);

        take(f.write_at(0, "hello"), "write_at 0");
        take(f.write_at(10, "world"), "write_at 10");
        CHECK(take(f.size(), "size") == 15);
        CHECK(take(f.read_at(0, 100), "read_at") == std::string("hello\0\0\0\0\0world", 15));
        CHECK(take(f.read_at(10, 3), "read_at middle") == "wor");
        // Past the end: fewer bytes, then none.
        CHECK(take(f.read_at(13, 100), "read_at across the end") == "ld");
        CHECK(take(f.read_at(15, 100), "read_at the end").empty());
        CHECK(take(f.read_at(1'000'000, 100), "read_at past the end").empty());

        take(f.write_at(2, "LL"), "overwrite");
        CHECK(take(f.read_at(0, 5), "read_at") == "heLLo");

        take(f.append("!"), "append");
        CHECK(take(f.size(), "size") == 16);
        CHECK(take(f.read_at(15, 1), "read appended") == "!");

        take(f.sync(), "sync");

        take(f.truncate(5), "truncate");
        CHECK(take(f.size(), "size") == 5);
        CHECK(take(f.read_at(0, 100), "read after truncate") == "heLLo");
        take(f.truncate(8), "truncate up");
        CHECK(take(f.read_at(0, 100), "read after growing") == std::string("heLLo\0\0\0", 8));

        f.close();
        CHECK_FALSE(f.is_open());
        CHECK(take(read_file(dir / "data"), "read_file") == std::string("heLLo\0\0\0", 8));
        return 0;
    });
}

TEST_CASE("File::open honours create, truncate, append and exclusive") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        const std::string p = dir / "f";
        take(write_file(p, "0123456789"), "write_file");

        // Without truncate the contents stay; with it they go.
        {
            File f = take(File::open(p, OpenMode::write), "open write");
            take(f.write_at(0, "ab"), "write_at");
        }
        CHECK(take(read_file(p), "read") == "ab23456789");
        {
            File f = take(File::open(p, OpenMode::write | OpenMode::truncate), "open truncate");
            CHECK(take(f.size(), "size") == 0);
        }
        CHECK(take(read_file(p), "read").empty());

        // Append mode writes at the end.
        take(write_file(p, "start"), "write_file");
        {
            File f = take(File::open(p, OpenMode::append), "open append");
            take(f.append("+one"), "append");
            take(f.append("+two"), "append");
        }
        CHECK(take(read_file(p), "read") == "start+one+two");

        // Exclusive creation fails on an existing file and works on a new one.
        Result<File> again = File::open(p, OpenMode::write | OpenMode::create | OpenMode::exclusive);
        REQUIRE_FALSE(again.ok());
        CHECK(again.error().sys_errno == EEXIST);
        File fresh = take(File::open(dir / "fresh", OpenMode::write | OpenMode::create | OpenMode::exclusive),
                          "open exclusive");
        take(fresh.write_at(0, "x"), "write_at");
        fresh.close();
        CHECK(take(read_file(dir / "fresh"), "read") == "x");

        // A read-only file refuses writes with an error, not a crash.
        File ro = take(File::open(p, OpenMode::read), "open read");
        CHECK_FALSE(ro.write_at(0, "nope").ok());
        CHECK(take(ro.read_at(0, 5), "read_at") == "start");
        return 0;
    });
}

TEST_CASE("read_at refuses more than the runtime's file read limit") {
    TempDir dir;
    Runtime rt;
    rt.run([&] {
        File f = take(File::open(dir / "f", OpenMode::read | OpenMode::write | OpenMode::create), "open");
        CHECK(outcome(f.read_at(0, limits::file_read_bytes_max + 1)) == Errc::limit);
        return 0;
    });
}
