// Tests of SimDisk: what is visible, what survives a crash (torn writes too), a full disk, failing fsyncs, determinism.
//
// The disk is driven step by step, as the runtime's file operations drive a FileWorld; one test
// runs the runtime's own write_file_atomic on it (Options::file_world) with a crash after every
// step. Tests that draw from a disk's seed print it (test_seed) and accept REPRISE_TEST_SEED.
#include "../support/reprise_test.hpp"

#include <reprise/sim/disk.hpp>

#include <cerrno>
#include <set>

using namespace reprise;
using namespace reprise::test;
using reprise::sim::DiskFaults;
using reprise::sim::SimDisk;

namespace {

constexpr OpenMode create_rw = OpenMode::read | OpenMode::write | OpenMode::create;

/// The errno a step failed with (0 on success), to tell EIO from ENOSPC from EBADF.
template <class T>
int errno_of(const Result<T>& r) {
    return r.ok() ? 0 : r.error().sys_errno;
}

DiskFaults no_torn_writes() {
    DiskFaults f;
    f.torn_writes = false;
    return f;
}

/// Makes `folder` and its entry in the working folder durable.
void durable_folder(SimDisk& disk, const std::string& folder) {
    must(disk.make_directories(folder), "make_directories");
    must(disk.sync_directory(folder), "sync_directory of the working folder");
}

/// Writes a file, syncs it and its folder: durable in every way.
void durable_file(SimDisk& disk, const std::string& path, std::string_view bytes) {
    FileToken f = must(disk.open(path, OpenMode::write | OpenMode::create | OpenMode::truncate), "open");
    must(disk.write(f, 0, bytes), "write");
    must(disk.sync(f), "sync");
    disk.close(f);
    must(disk.sync_directory(path), "sync_directory");
}

std::string read_all(SimDisk& disk, FileToken f) { return must(disk.read(f, 0, 1 << 20), "read"); }

/// The whole file at `path`, or nullopt when there is none.
std::optional<std::string> contents(SimDisk& disk, const std::string& path) {
    auto f = disk.open(path, OpenMode::read);
    if (!f.ok()) {
        REQUIRE(f.code() == Errc::not_found);
        return std::nullopt;
    }
    std::string bytes = read_all(disk, *f);
    disk.close(*f);
    return bytes;
}

void power_cycle(SimDisk& disk) {
    disk.crash();
    disk.restart();
}

} // namespace

// --- the visible state ---------------------------------------------------------------------------

TEST_CASE("a write is read back at once, before any sync") {
    SimDisk disk(1);
    FileToken f = must(disk.open("log", create_rw), "open");
    must(disk.write(f, 0, "hello"), "write");
    must(disk.append(f, " world"), "append");
    REQUIRE(read_all(disk, f) == "hello world");
    REQUIRE(must(disk.read(f, 6, 3), "read") == "wor");
    REQUIRE(must(disk.read(f, 100, 3), "read past the end").empty());
    REQUIRE(must(disk.size(f), "size") == 11);
    must(disk.write(f, 13, "!"), "write past the end");
    REQUIRE(read_all(disk, f) == std::string("hello world\0\0!", 14));
    must(disk.truncate(f, 5), "truncate");
    REQUIRE(read_all(disk, f) == "hello");
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"log", "hello"}});
    REQUIRE(disk.durable_files().empty());
}

TEST_CASE("open modes mean what open(2)'s flags mean") {
    SimDisk disk(1);
    REQUIRE(outcome(disk.open("missing", OpenMode::read)) == Errc::not_found);
    REQUIRE(outcome(disk.open("no/such/folder/f", create_rw)) == Errc::not_found);
    FileToken f = must(disk.open("f", create_rw), "open");
    must(disk.write(f, 0, "abc"), "write");
    disk.close(f);

    auto again = disk.open("f", create_rw | OpenMode::exclusive);
    REQUIRE(errno_of(again) == EEXIST);
    REQUIRE(again.code() == Errc::io);

    FileToken ro = must(disk.open("f", OpenMode::read), "open read-only");
    REQUIRE(errno_of(disk.write(ro, 0, "x")) == EBADF);
    REQUIRE(outcome(disk.truncate(ro, 0)) == Errc::invalid_argument);
    REQUIRE(read_all(disk, ro) == "abc");
    disk.close(ro);

    FileToken wo = must(disk.open("f", OpenMode::write), "open write-only");
    REQUIRE(errno_of(disk.read(wo, 0, 3)) == EBADF);
    disk.close(wo);

    FileToken ap = must(disk.open("f", OpenMode::append), "open append");
    must(disk.write(ap, 0, "d"), "write at 0 through append");  // O_APPEND: to the end, as Linux does
    disk.close(ap);
    REQUIRE(contents(disk, "f") == "abcd");

    FileToken tr = must(disk.open("f", OpenMode::write | OpenMode::truncate), "open truncate");
    REQUIRE(must(disk.size(tr), "size") == 0);
    disk.close(tr);

    REQUIRE(errno_of(disk.read(tr, 0, 1)) == EBADF);  // closed
    REQUIRE(errno_of(disk.sync(12345)) == EBADF);      // never opened
}

TEST_CASE("paths: repeated and trailing slashes, dot names, folders and files") {
    SimDisk disk(1);
    must(disk.make_directories("data//logs/"), "make_directories");
    REQUIRE(must(disk.exists("data/logs"), "exists"));
    REQUIRE(must(disk.exists("./data/./logs/"), "exists"));
    REQUIRE_FALSE(must(disk.exists("/data/logs"), "exists"));  // relative and absolute are two trees
    REQUIRE_FALSE(must(disk.exists(""), "exists"));
    REQUIRE(outcome(disk.open("", create_rw)) == Errc::not_found);
    REQUIRE(outcome(disk.rename("", "x")) == Errc::not_found);
    REQUIRE(outcome(disk.unlink("")) == Errc::not_found);
    must(disk.sync_directory(""), "sync_directory of \"\" (the working folder, as RealFileWorld)");
    FileToken f = must(disk.open("data//logs/../logs/a", create_rw), "open");
    disk.close(f);
    REQUIRE(disk.visible_files().count("data/logs/a") == 1);
    REQUIRE(must(disk.exists("data/logs/a"), "exists"));
    REQUIRE_FALSE(must(disk.exists("data/logs/a/"), "exists"));  // a trailing slash names a folder

    REQUIRE(errno_of(disk.open("data/logs/a/", OpenMode::read)) == ENOTDIR);
    REQUIRE(errno_of(disk.open("data/logs/b/", create_rw)) == EISDIR);
    REQUIRE(errno_of(disk.open("data/logs", OpenMode::read)) == EISDIR);
    REQUIRE(errno_of(disk.open("data/logs/a/x", create_rw)) == ENOTDIR);
    REQUIRE(errno_of(disk.make_directories("data/logs/a")) == ENOTDIR);
    REQUIRE(outcome(disk.make_directories("")) == Errc::invalid_argument);
    REQUIRE(errno_of(disk.unlink("data/logs")) == EISDIR);
    REQUIRE(outcome(disk.unlink("data/logs/nothing")) == Errc::not_found);

    must(disk.make_directories("/abs"), "make_directories");
    f = must(disk.open("/abs/b", create_rw), "open");
    disk.close(f);
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"/abs/b", ""}, {"data/logs/a", ""}});
}

TEST_CASE("an open file follows its inode: renamed, it keeps working; unlinked, it stays readable until closed") {
    SimDisk disk(1);
    FileToken f = must(disk.open("a", create_rw), "open");
    must(disk.write(f, 0, "one"), "write");
    must(disk.rename("a", "b"), "rename");
    must(disk.append(f, "two"), "append after the rename");
    REQUIRE(contents(disk, "b") == "onetwo");
    REQUIRE_FALSE(contents(disk, "a"));

    must(disk.unlink("b"), "unlink");
    REQUIRE_FALSE(must(disk.exists("b"), "exists"));
    REQUIRE(read_all(disk, f) == "onetwo");
    must(disk.append(f, "three"), "append after the unlink");
    REQUIRE(read_all(disk, f) == "onetwothree");
    disk.close(f);
    REQUIRE(disk.visible_files().empty());
}

TEST_CASE("rename replaces a file, and refuses what POSIX refuses") {
    SimDisk disk(1);
    durable_file(disk, "old", "1");
    durable_file(disk, "new", "2");
    must(disk.rename("new", "old"), "rename over");
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"old", "2"}});
    must(disk.rename("old", "old"), "rename onto itself");
    REQUIRE(outcome(disk.rename("gone", "x")) == Errc::not_found);
    REQUIRE(outcome(disk.rename("old", "no/such/x")) == Errc::not_found);
    must(disk.make_directories("d/e"), "make_directories");
    REQUIRE(errno_of(disk.rename("old", "d")) == EISDIR);
    REQUIRE(errno_of(disk.rename("d", "old")) == ENOTDIR);
    REQUIRE(outcome(disk.rename("d", "d/e/f")) == Errc::invalid_argument);
    must(disk.make_directories("full/x"), "make_directories");
    REQUIRE(errno_of(disk.rename("d", "full")) == ENOTEMPTY);
    must(disk.rename("d", "moved"), "rename of a folder");
    REQUIRE(must(disk.exists("moved/e"), "exists"));
    REQUIRE_FALSE(must(disk.exists("d"), "exists"));
}

// --- what survives a crash -------------------------------------------------------------------------

TEST_CASE("unsynced data is gone after a crash; synced data survives") {
    SimDisk disk(1, no_torn_writes());
    durable_file(disk, "state", "synced");
    FileToken f = must(disk.open("state", OpenMode::write), "open");
    must(disk.append(f, "+unsynced"), "append");
    REQUIRE(contents(disk, "state") == "synced+unsynced");
    REQUIRE(disk.durable_files() == std::map<std::string, std::string>{{"state", "synced"}});
    power_cycle(disk);
    REQUIRE(contents(disk, "state") == "synced");

    f = must(disk.open("state", OpenMode::write), "open");
    must(disk.append(f, "+more"), "append");
    must(disk.sync(f), "sync");
    disk.close(f);
    power_cycle(disk);
    REQUIRE(contents(disk, "state") == "synced+more");
}

TEST_CASE("a created file with synced data but no synced folder entry vanishes at a crash") {
    SimDisk disk(1, no_torn_writes());
    FileToken f = must(disk.open("fresh", create_rw), "open");
    must(disk.write(f, 0, "data"), "write");
    must(disk.sync(f), "sync");
    disk.close(f);
    REQUIRE(disk.durable_files().empty());
    power_cycle(disk);
    REQUIRE_FALSE(must(disk.exists("fresh"), "exists"));
    REQUIRE(disk.visible_files().empty());

    SECTION("with sync_directory, it survives") {
        durable_file(disk, "fresh", "data");
        power_cycle(disk);
        REQUIRE(contents(disk, "fresh") == "data");
    }
    SECTION("with only its entry synced, it survives empty") {
        f = must(disk.open("fresh", create_rw), "open");
        must(disk.write(f, 0, "data"), "write");
        must(disk.sync_directory("fresh"), "sync_directory");
        power_cycle(disk);
        REQUIRE(contents(disk, "fresh") == "");
    }
}

TEST_CASE("sync_directory syncs the folder holding its path (the folder itself with a trailing slash)") {
    SimDisk disk(1, no_torn_writes());
    durable_folder(disk, "data");
    durable_file(disk, "data/a", "1");        // sync_directory("data/a") syncs data
    FileToken f = must(disk.open("data/b", create_rw), "open");
    must(disk.sync(f), "sync");
    disk.close(f);
    must(disk.sync_directory("data/"), "sync_directory of data/");  // data itself, as parent_path() says
    REQUIRE(disk.durable_files() == std::map<std::string, std::string>{{"data/a", "1"}, {"data/b", ""}});
    REQUIRE(outcome(disk.sync_directory("nowhere/x")) == Errc::not_found);
    REQUIRE(errno_of(disk.sync_directory("data/a/x")) == ENOTDIR);
}

TEST_CASE("a folder made by make_directories vanishes at a crash, with what it holds, unless its parent was synced") {
    SimDisk disk(1, no_torn_writes());
    must(disk.make_directories("data"), "make_directories");
    durable_file(disk, "data/state", "x");  // synced in data, but data is not in "." durably
    REQUIRE(disk.durable_files().empty());
    power_cycle(disk);
    REQUIRE_FALSE(must(disk.exists("data"), "exists"));

    durable_folder(disk, "data");
    durable_file(disk, "data/state", "x");
    power_cycle(disk);
    REQUIRE(contents(disk, "data/state") == "x");
}

TEST_CASE("a rename not made durable is undone by a crash: the file is under its old name") {
    SimDisk disk(1, no_torn_writes());
    durable_file(disk, "a", "contents");
    FileToken f = must(disk.open("a", OpenMode::write), "open");
    must(disk.append(f, "+synced"), "append");
    must(disk.sync(f), "sync");
    disk.close(f);
    must(disk.rename("a", "b"), "rename");
    power_cycle(disk);
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"a", "contents+synced"}});

    must(disk.rename("a", "b"), "rename");
    must(disk.sync_directory("b"), "sync_directory");
    power_cycle(disk);
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"b", "contents+synced"}});
}

TEST_CASE("a rename between folders is durable in each folder once that folder is synced") {
    SimDisk disk(1, no_torn_writes());
    durable_folder(disk, "a");
    durable_folder(disk, "b");
    durable_file(disk, "a/f", "x");

    must(disk.rename("a/f", "b/f"), "rename");
    must(disk.sync_directory("b/f"), "sync_directory of b");
    power_cycle(disk);  // b's entry is durable, a's removal is not: two names
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"a/f", "x"}, {"b/f", "x"}});

    must(disk.unlink("b/f"), "unlink");
    must(disk.sync_directory("b/f"), "sync_directory of b");
    must(disk.rename("a/f", "b/f"), "rename");
    must(disk.sync_directory("a/f"), "sync_directory of a");
    power_cycle(disk);  // a's removal is durable, b's entry is not: no name
    REQUIRE(disk.visible_files().empty());
}

TEST_CASE("folders renamed into each other and synced in part come back as a cycle, which listing survives") {
    SimDisk disk(1, no_torn_writes());
    must(disk.make_directories("/x/y"), "make_directories");
    must(disk.sync_directory("/x"), "sync_directory of /");
    must(disk.sync_directory("/x/y"), "sync_directory of /x");
    must(disk.rename("/x/y", "/y"), "rename");
    must(disk.rename("/x", "/y/x"), "rename");
    must(disk.sync_directory("/y/x"), "sync_directory of /y");  // "/" and "/x" keep their old entries
    power_cycle(disk);
    REQUIRE(must(disk.exists("/x/y/x/y/x"), "exists"));
    FileToken f = must(disk.open("/x/y/f", create_rw), "open");
    disk.close(f);
    REQUIRE(disk.visible_files() == std::map<std::string, std::string>{{"/x/y/f", ""}});
    (void)disk.digest();
}

TEST_CASE("an unlink not made durable is undone by a crash: the file is back") {
    SimDisk disk(1, no_torn_writes());
    durable_file(disk, "keep", "bytes");
    must(disk.unlink("keep"), "unlink");
    REQUIRE(disk.visible_files().empty());
    power_cycle(disk);
    REQUIRE(contents(disk, "keep") == "bytes");

    must(disk.unlink("keep"), "unlink");
    must(disk.sync_directory("keep"), "sync_directory");
    power_cycle(disk);
    REQUIRE_FALSE(contents(disk, "keep"));
}

TEST_CASE("write_file_atomic leaves the complete old or the complete new contents at a crash after any step") {
    const std::uint64_t seed = test_seed("write_file_atomic at every step");
    const std::string old_bytes(3000, 'o'), new_bytes(5000, 'n');
    std::set<std::string> outcomes;
    bool finished = false;
    for (std::uint64_t k = 0; !finished; ++k) {
        for (std::uint64_t round = 0; round < 8; ++round) {
            INFO("crash after " << k << " steps, disk seed " << seed + round);
            auto disk = std::make_shared<SimDisk>(seed + round);
            durable_folder(*disk, "data");
            durable_file(*disk, "data/state", old_bytes);
            bool crashed = false;
            int calls = 0;
            disk->crash_after_steps(k, [&] {
                crashed = disk->crashed();
                ++calls;
            });
            Options options;
            options.file_world = disk;
            Runtime rt(options);
            Result<void> written;
            REQUIRE(rt.run([&] {
                written = write_file_atomic("data/state", new_bytes);
                return 0;
            }) == 0);
            REQUIRE(calls <= 1);
            if (calls == 0) {  // the operation ran whole before the planned crash
                REQUIRE(written.ok());
                finished = true;
            } else {
                REQUIRE(crashed);
                REQUIRE(errno_of(written) == EIO);
            }
            disk->crash();
            disk->restart();
            auto after = contents(*disk, "data/state");
            REQUIRE(after);
            REQUIRE((*after == old_bytes || *after == new_bytes));
            outcomes.insert(*after);
        }
    }
    // Both ends were reached: a crash early keeps the old contents, a crash after the last step the new.
    REQUIRE(outcomes.size() == 2);
}

TEST_CASE("without the sync of the temporary, a crash can leave the target neither old nor new") {
    // The same steps as write_file_atomic but the sync: the disk must expose that bug.
    const std::uint64_t seed = test_seed("atomic write without sync");
    const std::string old_bytes(3000, 'o'), new_bytes(5000, 'n');
    int broken = 0;
    for (std::uint64_t k = 0; k <= 5; ++k) {
        for (std::uint64_t round = 0; round < 8; ++round) {
            SimDisk disk(seed + round);
            durable_folder(disk, "data");
            durable_file(disk, "data/state", old_bytes);
            disk.crash_after_steps(k, [] {});
            auto tmp = disk.open("data/state.tmp", OpenMode::write | OpenMode::create | OpenMode::truncate);
            if (tmp.ok()) {
                (void)disk.write(*tmp, 0, new_bytes);
                disk.close(*tmp);
            }
            (void)disk.rename("data/state.tmp", "data/state");
            (void)disk.sync_directory("data/state");
            power_cycle(disk);
            auto after = contents(disk, "data/state");
            if (!after || (*after != old_bytes && *after != new_bytes))
                ++broken;
        }
    }
    REQUIRE(broken > 0);
}

// --- torn writes -------------------------------------------------------------------------------------

TEST_CASE("a torn write leaves the durable bytes and a prefix of the last unsynced write") {
    const std::uint64_t seed = test_seed("torn writes");
    const std::string durable(1000, 'd'), appended = pattern(0, 4000);
    for (bool torn : {true, false}) {
        DiskFaults faults;
        faults.torn_writes = torn;
        int partial = 0, none = 0;
        for (std::uint64_t round = 0; round < 64; ++round) {
            INFO("torn_writes " << torn << ", disk seed " << seed + round);
            SimDisk disk(seed + round, faults);
            durable_file(disk, "log", durable);
            FileToken f = must(disk.open("log", OpenMode::append), "open");
            must(disk.append(f, "lost: not the last write"), "append");
            must(disk.append(f, appended), "append");
            power_cycle(disk);
            const std::string after = *contents(disk, "log");
            REQUIRE(after.size() >= durable.size());
            REQUIRE(after.substr(0, durable.size()) == durable);
            const std::string rest = after.substr(durable.size());
            if (rest.empty()) {
                ++none;
                continue;
            }
            REQUIRE(torn);
            // The gap where the earlier (lost) append was reads as zero bytes; then the prefix.
            const std::size_t gap = std::string("lost: not the last write").size();
            REQUIRE(rest.size() > gap);
            REQUIRE(rest.substr(0, gap) == std::string(gap, '\0'));
            REQUIRE(appended.compare(0, rest.size() - gap, rest, gap) == 0);
            if (rest.size() - gap < appended.size())
                ++partial;
        }
        if (torn)
            REQUIRE(partial > 0);
        else
            REQUIRE(none == 64);
    }
}

TEST_CASE("a torn rewrite in place mixes old and new bytes; a truncate after the write tears nothing") {
    const std::uint64_t seed = test_seed("torn rewrite");
    int mixed = 0;
    for (std::uint64_t round = 0; round < 64; ++round) {
        SimDisk disk(seed + round);
        durable_file(disk, "f", std::string(100, 'o'));
        FileToken f = must(disk.open("f", OpenMode::write | OpenMode::truncate), "open");
        must(disk.write(f, 0, std::string(100, 'n')), "write");
        power_cycle(disk);
        const std::string after = *contents(disk, "f");
        REQUIRE(after.size() == 100);
        const auto n = after.find_first_not_of('n');
        REQUIRE((n == std::string::npos || after.find_first_not_of('o', n) == std::string::npos));
        mixed += n != std::string::npos && n > 0;

        f = must(disk.open("f", OpenMode::write), "open");
        must(disk.write(f, 0, std::string(100, 'x')), "write");
        must(disk.truncate(f, 10), "truncate");
        REQUIRE(*contents(disk, "f") == std::string(10, 'x'));
        power_cycle(disk);
        REQUIRE(*contents(disk, "f") == after);
    }
    REQUIRE(mixed > 0);
}

// --- a full disk and failing fsyncs ----------------------------------------------------------------

TEST_CASE("a full disk fails a write with ENOSPC and writes nothing") {
    DiskFaults faults;
    faults.capacity_bytes = 100;
    SimDisk disk(1, faults);
    FileToken a = must(disk.open("a", create_rw), "open");
    must(disk.write(a, 0, std::string(60, 'a')), "write");
    FileToken b = must(disk.open("b", create_rw), "open");
    must(disk.append(b, std::string(40, 'b')), "append to exactly full");

    auto full = disk.append(b, "x");
    REQUIRE(errno_of(full) == ENOSPC);
    REQUIRE(full.code() == Errc::io);
    REQUIRE(errno_of(disk.write(a, 50, std::string(11, 'z'))) == ENOSPC);  // grows a by 1
    must(disk.write(a, 50, std::string(10, 'z')), "an overwrite inside the file takes no space");
    REQUIRE(errno_of(disk.truncate(a, 61)) == ENOSPC);
    REQUIRE(must(disk.size(a), "size") == 60);
    REQUIRE(must(disk.size(b), "size") == 40);
    REQUIRE(read_all(disk, b) == std::string(40, 'b'));

    must(disk.unlink("a"), "unlink");  // still open: still takes its space
    REQUIRE(errno_of(disk.append(b, "x")) == ENOSPC);
    disk.close(a);
    must(disk.append(b, "x"), "append once a's space is free");
}

TEST_CASE("with a sync failure rate of 1, every sync and sync_directory fails with EIO") {
    DiskFaults faults;
    faults.sync_failure_rate = 1.0;
    faults.torn_writes = false;
    SimDisk disk(test_seed("failing syncs"), faults);
    FileToken f = must(disk.open("f", create_rw), "open");
    for (int i = 0; i < 20; ++i) {
        must(disk.append(f, "x"), "append");
        auto r = disk.sync(f);
        REQUIRE(errno_of(r) == EIO);
        REQUIRE(r.code() == Errc::io);
        REQUIRE(errno_of(disk.sync_directory("f")) == EIO);
    }
    REQUIRE(disk.durable_files().empty());
    disk.close(f);
}

TEST_CASE("a failed fsync drops the unsynced writes or keeps them unsynced; a later sync makes durable what is visible") {
    const std::uint64_t seed = test_seed("fsyncgate");
    int dropped = 0, kept = 0;
    for (std::uint64_t round = 0; round < 64; ++round) {
        DiskFaults faults;
        faults.torn_writes = false;
        SimDisk disk(seed + round, faults);
        durable_file(disk, "f", "durable");
        FileToken f = must(disk.open("f", OpenMode::read | OpenMode::append), "open");
        must(disk.append(f, "+unsynced"), "append");
        faults.sync_failure_rate = 1.0;
        disk.set_faults(faults);
        REQUIRE(errno_of(disk.sync(f)) == EIO);
        const std::string visible = read_all(disk, f);
        REQUIRE((visible == "durable" || visible == "durable+unsynced"));
        (visible == "durable" ? dropped : kept)++;
        REQUIRE(disk.durable_files().at("f") == "durable");

        faults.sync_failure_rate = 0.0;
        disk.set_faults(faults);
        must(disk.sync(f), "sync after the failure: reported once");
        REQUIRE(disk.durable_files().at("f") == visible);
        disk.close(f);
    }
    REQUIRE(dropped > 0);
    REQUIRE(kept > 0);
}

TEST_CASE("a failed sync_directory leaves the folder's entries unsynced, not dropped") {
    DiskFaults faults;
    faults.torn_writes = false;
    SimDisk disk(1, faults);
    FileToken f = must(disk.open("f", create_rw), "open");
    must(disk.sync(f), "sync");
    disk.close(f);
    faults.sync_failure_rate = 1.0;
    disk.set_faults(faults);
    REQUIRE(errno_of(disk.sync_directory("f")) == EIO);
    REQUIRE(must(disk.exists("f"), "exists"));
    REQUIRE(disk.durable_files().empty());
    faults.sync_failure_rate = 0.0;
    disk.set_faults(faults);
    must(disk.sync_directory("f"), "sync_directory");
    REQUIRE(disk.durable_files().count("f") == 1);
}

// --- determinism ---------------------------------------------------------------------------------------

namespace {

/// A run of steps with every fault on: the outcome of each step, and the digests along the way.
std::vector<std::uint64_t> faulty_run(std::uint64_t seed) {
    DiskFaults faults;
    faults.sync_failure_rate = 0.5;
    faults.capacity_bytes = 20000;
    SimDisk disk(seed, faults);
    std::vector<std::uint64_t> trail;
    auto note = [&](int e) { trail.push_back(static_cast<std::uint64_t>(e)); };
    (void)disk.make_directories("d");
    note(errno_of(disk.sync_directory("d")));
    for (int i = 0; i < 40; ++i) {
        const std::string path = "d/f" + std::to_string(i % 5);
        auto f = disk.open(path, OpenMode::write | OpenMode::create);
        note(errno_of(f));
        if (f.ok()) {
            note(errno_of(disk.append(*f, pattern(static_cast<std::uint64_t>(i) * 977, 700 + 13 * i))));
            note(errno_of(disk.sync(*f)));
            disk.close(*f);
        }
        note(errno_of(disk.sync_directory(path)));
        if (i % 7 == 3)
            note(errno_of(disk.rename(path, "d/r" + std::to_string(i))));
        if (i % 11 == 5)
            power_cycle(disk);
        trail.push_back(disk.digest());
    }
    trail.push_back(disk.steps());
    return trail;
}

} // namespace

TEST_CASE("two disks with the same seed and the same steps have the same outcomes and digests; other seeds differ") {
    const std::uint64_t seed = test_seed("disk determinism");
    const auto first = faulty_run(seed);
    REQUIRE(faulty_run(seed) == first);
    bool differs = false;
    for (std::uint64_t other = 1; other <= 8 && !differs; ++other)
        differs = faulty_run(seed + other) != first;
    REQUIRE(differs);
}

TEST_CASE("the digest covers both layers and not the order files were made in") {
    SimDisk a(1), b(2);
    durable_file(a, "x", "1");
    durable_file(a, "y", "2");
    durable_file(b, "y", "2");
    durable_file(b, "x", "1");
    REQUIRE(a.digest() == b.digest());

    FileToken f = must(a.open("x", OpenMode::write), "open");
    must(a.write(f, 0, "9"), "write");
    const std::uint64_t visible_changed = a.digest();
    REQUIRE(visible_changed != b.digest());
    must(a.sync(f), "sync");
    REQUIRE(a.digest() != visible_changed);  // the durable layer changed too
    a.close(f);
    const std::uint64_t before_folder = a.digest();
    must(a.make_directories("empty"), "make_directories");
    REQUIRE(a.digest() != before_folder);
}

// --- crashes, tokens and steps -----------------------------------------------------------------------

TEST_CASE("after a crash every step fails with EIO until restart, and old tokens stay invalid") {
    SimDisk disk(1);
    durable_file(disk, "f", "x");
    FileToken f = must(disk.open("f", OpenMode::read), "open");
    disk.crash();
    REQUIRE(disk.crashed());
    REQUIRE(errno_of(disk.read(f, 0, 1)) == EIO);
    REQUIRE(errno_of(disk.open("f", OpenMode::read)) == EIO);
    REQUIRE(errno_of(disk.exists("f")) == EIO);
    REQUIRE(errno_of(disk.make_directories("d")) == EIO);
    REQUIRE(disk.read(f, 0, 1).code() == Errc::io);
    disk.close(f);
    disk.restart();
    REQUIRE_FALSE(disk.crashed());
    REQUIRE(errno_of(disk.read(f, 0, 1)) == EBADF);
    REQUIRE(contents(disk, "f") == "x");
}

TEST_CASE("steps() counts every step, failed ones included") {
    SimDisk disk(1);
    REQUIRE(disk.steps() == 0);
    FileToken f = must(disk.open("f", create_rw), "open");
    must(disk.append(f, "x"), "append");
    (void)disk.read(f, 0, 1);
    disk.close(f);
    REQUIRE(disk.steps() == 4);
    REQUIRE(outcome(disk.open("missing", OpenMode::read)) == Errc::not_found);
    REQUIRE(outcome(disk.unlink("missing")) == Errc::not_found);
    REQUIRE(disk.steps() == 6);
    disk.crash();
    (void)disk.exists("f");
    REQUIRE(disk.steps() == 7);
    (void)disk.visible_files();
    (void)disk.digest();
    REQUIRE(disk.steps() == 7);  // looking at the disk is no step
}

TEST_CASE("crash_after_steps crashes before the step after n more, and calls on_crash once") {
    SimDisk disk(1, no_torn_writes());
    durable_file(disk, "f", "old");
    int calls = 0;
    bool crashed_in_callback = false;
    disk.crash_after_steps(2, [&] {
        ++calls;
        crashed_in_callback = disk.crashed();
    });
    FileToken f = must(disk.open("f", OpenMode::write), "open");  // 1
    must(disk.write(f, 0, "new"), "write");                       // 2
    REQUIRE(calls == 0);
    REQUIRE(errno_of(disk.sync(f)) == EIO);                       // crashes first
    REQUIRE(calls == 1);
    REQUIRE(crashed_in_callback);
    REQUIRE(errno_of(disk.sync(f)) == EIO);
    disk.restart();
    REQUIRE(calls == 1);
    REQUIRE(contents(disk, "f") == "old");
    REQUIRE(calls == 1);

    disk.crash_after_steps(0, [&] { ++calls; });
    REQUIRE(errno_of(disk.exists("f")) == EIO);  // n = 0: the very next step
    REQUIRE(calls == 2);
    REQUIRE(disk.crashed());
}
