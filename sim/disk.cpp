// SimDisk: an in-memory file tree with a visible and a durable layer, and what a power loss leaves of it.
#include "reprise/sim/disk.hpp"

#include "reprise/record/trace.hpp"
#include "reprise/runtime/internal/prng.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

namespace reprise::sim {

namespace {

using InodeId = std::uint64_t;

/// The two roots, which always exist: "/" and the node's working folder ".".
constexpr InodeId root_inode = 0;
constexpr InodeId working_folder_inode = 1;

/// The largest offset or size a step takes (off_t's), as the machine's file system.
constexpr std::uint64_t offset_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

Error sys(int errno_value) { return error_from_errno(errno_value); }

/// A file or a folder.
struct Inode {
    bool folder = false;
    /// A file's bytes: what reads see, and what a crash leaves.
    std::string data, durable;
    /// A file's last write since its last sync (offset, bytes): what may tear in at a crash.
    std::optional<std::pair<std::uint64_t, std::string>> last_write;
    /// A folder's entries: what lookups see, and what a crash leaves.
    std::map<std::string, InodeId> entries, durable_entries;
};

/// An open file: its inode (not its name) and what its mode allows.
struct OpenFile {
    InodeId inode;
    bool readable;
    bool writable;
    bool append;
};

/// A path as its names, resolved lexically (the disk has no links): "a//b/./c/" -> a, b, c.
struct Path {
    /// "": names nothing (ENOENT), as for open(2).
    bool empty = false;
    bool absolute = false;
    std::vector<std::string> names;
    /// "a/b/": the path must name a folder.
    bool trailing_slash = false;
};

Path parse(std::string_view raw) {
    Path p;
    p.empty = raw.empty();
    p.absolute = !raw.empty() && raw.front() == '/';
    p.trailing_slash = raw.size() > 1 && raw.back() == '/';
    std::size_t start = 0;
    while (start <= raw.size()) {
        std::size_t end = raw.find('/', start);
        if (end == std::string_view::npos)
            end = raw.size();
        const std::string_view name = raw.substr(start, end - start);
        if (name == "..") {
            if (!p.names.empty())
                p.names.pop_back();
        } else if (!name.empty() && name != ".") {
            p.names.emplace_back(name);
        }
        start = end + 1;
    }
    return p;
}

/// `bytes` written over `data` at `offset`; a gap before it reads as zero bytes.
void overlay(std::string& data, std::uint64_t offset, std::string_view bytes) {
    const auto at = static_cast<std::size_t>(offset);
    if (data.size() < at + bytes.size())
        data.resize(at + bytes.size(), '\0');
    data.replace(at, bytes.size(), bytes);
}

/// Appends a length-prefixed field to the digest's input, so no two states serialize alike.
void put(std::string& out, std::string_view field) {
    std::uint64_t n = field.size();
    for (int i = 0; i < 8; ++i, n >>= 8)
        out.push_back(static_cast<char>(n & 0xff));
    out.append(field);
}

} // namespace

struct SimDisk::State {
    State(std::uint64_t seed, DiskFaults f) : faults(f), prng(seed) {
        check(faults);
        inodes[root_inode].folder = true;
        inodes[working_folder_inode].folder = true;
    }

    static void check(const DiskFaults& f) {
        REPRISE_ASSERT_MSG(f.sync_failure_rate >= 0.0 && f.sync_failure_rate <= 1.0,
                           "DiskFaults::sync_failure_rate is a probability, in [0, 1]");
    }

    mutable std::mutex mutex;
    DiskFaults faults;
    detail::Prng prng;
    std::map<InodeId, Inode> inodes;
    InodeId next_inode = working_folder_inode + 1;
    std::map<FileToken, OpenFile> open_files;
    /// Never reused, so a token from before a crash stays invalid after the restart.
    FileToken next_token = 1;
    bool crashed = false;
    std::uint64_t steps = 0;
    std::optional<std::uint64_t> crash_countdown;
    std::function<void()> on_crash;

    // --- the gate of every step ----------------------------------------------------------------

    /// Runs one step: counts it, fires a planned crash, fails while crashed, else runs `body`.
    template <class T, class F>
    Result<T> step(F&& body) {
        std::function<void()> fire;
        {
            std::lock_guard lock(mutex);
            ++steps;
            if (crash_countdown && (*crash_countdown)-- == 0) {
                fire = std::move(on_crash);
                crash();
            } else if (!crashed) {
                return body();
            }
        }
        // Outside the lock: the callback may look at the disk.
        if (fire)
            fire();
        return sys(EIO);
    }

    // --- the tree ---------------------------------------------------------------------------------

    /// Where a path leads: the folder holding its last name, that name, and what it names now
    /// (a root for a path with no name: "/", ".", "").
    struct Place {
        InodeId parent = root_inode;
        std::string name;
        std::optional<InodeId> target;
        /// The folders walked through, the root first (to refuse moving a folder into itself).
        std::vector<InodeId> folders;
    };

    Result<Place> lookup(const Path& p) const {
        if (p.empty)
            return sys(ENOENT);
        Place place;
        InodeId folder = p.absolute ? root_inode : working_folder_inode;
        place.folders.push_back(folder);
        if (p.names.empty()) {
            place.parent = folder;
            place.target = folder;
            return place;
        }
        for (std::size_t i = 0; i + 1 < p.names.size(); ++i) {
            const auto& entries = inodes.at(folder).entries;
            auto it = entries.find(p.names[i]);
            if (it == entries.end())
                return sys(ENOENT);
            if (!inodes.at(it->second).folder)
                return sys(ENOTDIR);
            folder = it->second;
            place.folders.push_back(folder);
        }
        place.parent = folder;
        place.name = p.names.back();
        const auto& entries = inodes.at(folder).entries;
        if (auto it = entries.find(place.name); it != entries.end())
            place.target = it->second;
        return place;
    }

    /// The inodes reachable from the roots and the open files, through folders' visible
    /// entries and, with `durable_too`, their durable ones. A cycle (two renames of folders,
    /// each durable in one folder only) is walked once.
    std::set<InodeId> reachable(bool durable_too) const {
        std::set<InodeId> seen{root_inode, working_folder_inode};
        std::vector<InodeId> todo{root_inode, working_folder_inode};
        for (const auto& [token, file] : open_files)
            if (seen.insert(file.inode).second)
                todo.push_back(file.inode);
        auto follow = [&](const std::map<std::string, InodeId>& entries) {
            for (const auto& [name, id] : entries)
                if (seen.insert(id).second)
                    todo.push_back(id);
        };
        while (!todo.empty()) {
            const Inode& node = inodes.at(todo.back());
            todo.pop_back();
            follow(node.entries);
            if (durable_too)
                follow(node.durable_entries);
        }
        return seen;
    }

    /// Forgets the inodes nothing can reach any more: no name, visible or durable (in a folder
    /// that is itself kept), and no open token.
    void collect() {
        const std::set<InodeId> keep = reachable(true);
        std::erase_if(inodes, [&](const auto& entry) { return keep.count(entry.first) == 0; });
    }

    /// The bytes of every file a program can reach: by a name, or through an open token.
    std::uint64_t used_bytes() const {
        std::uint64_t total = 0;
        for (InodeId id : reachable(false))
            total += inodes.at(id).data.size();
        return total;
    }

    /// Whether growing a file from `old_size` to `new_size` bytes fits on the disk.
    bool fits(std::uint64_t old_size, std::uint64_t new_size) const {
        if (new_size <= old_size)
            return true;
        const std::uint64_t used = used_bytes();
        return used <= faults.capacity_bytes && new_size - old_size <= faults.capacity_bytes - used;
    }

    /// Visits every folder and file of one layer in path order (a folder before what it holds):
    /// visit(path, inode). Paths are as a program names them: "/a/b" under the root, "a/b" under
    /// the working folder. A file with two names (a rename between folders, durable in one of
    /// them) is visited under both; a folder with two, under its first only, so a cycle ends.
    template <class F>
    void walk(bool durable, F&& visit) const {
        std::set<InodeId> seen{root_inode, working_folder_inode};
        auto go = [&](auto& self, InodeId folder, const std::string& prefix) -> void {
            const Inode& node = inodes.at(folder);
            for (const auto& [name, id] : durable ? node.durable_entries : node.entries) {
                const Inode& child = inodes.at(id);
                if (child.folder && !seen.insert(id).second)
                    continue;
                const std::string path = prefix.empty() ? name : prefix == "/" ? "/" + name : prefix + "/" + name;
                visit(path, child);
                if (child.folder)
                    self(self, id, path);
            }
        };
        go(go, root_inode, "/");
        go(go, working_folder_inode, "");
    }

    std::map<std::string, std::string> files(bool durable) const {
        std::map<std::string, std::string> out;
        walk(durable, [&](const std::string& path, const Inode& node) {
            if (!node.folder)
                out.emplace(path, durable ? node.durable : node.data);
        });
        return out;
    }

    /// A draw that comes out true with probability `rate` (no draw at all for 0).
    bool chance(double rate) {
        if (rate <= 0.0)
            return false;
        return static_cast<double>(prng.next() >> 11) * 0x1p-53 < rate;
    }

    // --- power loss ---------------------------------------------------------------------------------

    void crash() {
        crashed = true;
        crash_countdown.reset();  // a planned crash is this one, or moot after it
        on_crash = nullptr;
        open_files.clear();
        for (auto& [id, node] : inodes) {
            if (node.folder) {
                node.entries = node.durable_entries;
                continue;
            }
            if (faults.torn_writes && node.last_write) {
                const auto& [offset, bytes] = *node.last_write;
                const std::uint64_t kept = prng.below(bytes.size() + 1);
                if (kept > 0)
                    overlay(node.durable, offset, std::string_view(bytes).substr(0, kept));
            }
            node.data = node.durable;
            node.last_write.reset();
        }
        collect();
        REPRISE_ASSERT(inodes.count(root_inode) == 1 && inodes.count(working_folder_inode) == 1);
    }

    // --- the steps -----------------------------------------------------------------------------------

    OpenFile* file_of(FileToken token) {
        auto it = open_files.find(token);
        return it == open_files.end() ? nullptr : &it->second;
    }

    Result<FileToken> open(const std::string& raw, OpenMode mode) {
        const Path p = parse(raw);
        auto place = lookup(p);
        if (!place.ok())
            return place.error();
        const bool writable = has(mode, OpenMode::write) || has(mode, OpenMode::append);
        InodeId id = 0;
        if (place->target) {
            id = *place->target;
            Inode& node = inodes.at(id);
            if (has(mode, OpenMode::create) && has(mode, OpenMode::exclusive))
                return sys(EEXIST);
            if (node.folder)
                return sys(EISDIR);
            if (p.trailing_slash)
                return sys(ENOTDIR);
            if (has(mode, OpenMode::truncate)) {
                node.data.clear();
                node.last_write.reset();
            }
        } else {
            if (!has(mode, OpenMode::create))
                return sys(ENOENT);
            if (p.trailing_slash)
                return sys(EISDIR);
            id = next_inode++;
            inodes.emplace(id, Inode{});
            inodes.at(place->parent).entries[place->name] = id;
        }
        const FileToken token = next_token++;
        open_files[token] = OpenFile{id, has(mode, OpenMode::read) || !writable, writable, has(mode, OpenMode::append)};
        return token;
    }

    Result<void> close(FileToken token) {
        if (open_files.erase(token) != 0)
            collect();
        return {};
    }

    Result<std::string> read(FileToken token, std::uint64_t offset, std::size_t max_bytes) {
        const OpenFile* file = file_of(token);
        if (file == nullptr || !file->readable)
            return sys(EBADF);
        if (offset > offset_max)
            return sys(EINVAL);
        const std::string& data = inodes.at(file->inode).data;
        if (offset >= data.size())
            return std::string();
        return data.substr(static_cast<std::size_t>(offset), max_bytes);
    }

    Result<void> write(FileToken token, std::optional<std::uint64_t> offset, std::string_view bytes) {
        const OpenFile* file = file_of(token);
        if (file == nullptr || !file->writable)
            return sys(EBADF);
        Inode& node = inodes.at(file->inode);
        // O_APPEND sends every write to the end, pwrite's too (as Linux does).
        const std::uint64_t at = offset && !file->append ? *offset : node.data.size();
        if (at > offset_max)
            return sys(EINVAL);
        if (bytes.empty())
            return {};
        if (bytes.size() > offset_max - at)
            return sys(EFBIG);
        if (!fits(node.data.size(), std::max<std::uint64_t>(node.data.size(), at + bytes.size())))
            return sys(ENOSPC);
        overlay(node.data, at, bytes);
        node.last_write.emplace(at, std::string(bytes));
        return {};
    }

    Result<void> sync(FileToken token) {
        const OpenFile* file = file_of(token);
        if (file == nullptr)
            return sys(EBADF);
        Inode& node = inodes.at(file->inode);
        if (chance(faults.sync_failure_rate)) {
            // fsyncgate: the unsynced writes are dropped (reads lose them too) or kept, unsynced.
            if (prng.below(2) == 0) {
                node.data = node.durable;
                node.last_write.reset();
            }
            return sys(EIO);
        }
        node.durable = node.data;
        node.last_write.reset();
        return {};
    }

    Result<std::uint64_t> size(FileToken token) {
        const OpenFile* file = file_of(token);
        if (file == nullptr)
            return sys(EBADF);
        return std::uint64_t{inodes.at(file->inode).data.size()};
    }

    Result<void> truncate(FileToken token, std::uint64_t size) {
        const OpenFile* file = file_of(token);
        if (file == nullptr)
            return sys(EBADF);
        if (!file->writable || size > offset_max)
            return sys(EINVAL);
        Inode& node = inodes.at(file->inode);
        if (!fits(node.data.size(), size))
            return sys(ENOSPC);
        node.data.resize(static_cast<std::size_t>(size), '\0');
        node.last_write.reset();
        return {};
    }

    Result<void> rename(const std::string& from, const std::string& to) {
        const Path pf = parse(from), pt = parse(to);
        auto a = lookup(pf);
        if (!a.ok())
            return a.error();
        if (!a->target)
            return sys(ENOENT);
        auto b = lookup(pt);
        if (!b.ok())
            return b.error();
        if (pf.names.empty() || pt.names.empty())
            return sys(EBUSY);
        const InodeId moving = *a->target;
        const bool folder = inodes.at(moving).folder;
        if (!folder && (pf.trailing_slash || pt.trailing_slash))
            return sys(ENOTDIR);
        if (b->target) {
            if (*b->target == moving)
                return {};
            const Inode& replaced = inodes.at(*b->target);
            if (replaced.folder && !folder)
                return sys(EISDIR);
            if (!replaced.folder && folder)
                return sys(ENOTDIR);
            if (replaced.folder && !replaced.entries.empty())
                return sys(ENOTEMPTY);
        }
        if (folder && std::find(b->folders.begin(), b->folders.end(), moving) != b->folders.end())
            return sys(EINVAL);
        inodes.at(a->parent).entries.erase(a->name);
        inodes.at(b->parent).entries[b->name] = moving;
        collect();
        return {};
    }

    Result<void> unlink(const std::string& raw) {
        const Path p = parse(raw);
        auto place = lookup(p);
        if (!place.ok())
            return place.error();
        if (!place->target)
            return sys(ENOENT);
        if (p.names.empty() || inodes.at(*place->target).folder)
            return sys(EISDIR);
        if (p.trailing_slash)
            return sys(ENOTDIR);
        inodes.at(place->parent).entries.erase(place->name);
        collect();
        return {};
    }

    Result<void> sync_directory(const std::string& raw) {
        // The folder holding `raw`, named as RealFileWorld names it ("" is the working folder).
        const std::string folder_path = std::filesystem::path(raw).parent_path().string();
        auto place = lookup(parse(folder_path.empty() ? "." : folder_path));
        if (!place.ok())
            return place.error();
        if (!place->target)
            return sys(ENOENT);
        Inode& folder = inodes.at(*place->target);
        if (!folder.folder)
            return sys(ENOTDIR);
        if (chance(faults.sync_failure_rate))
            return sys(EIO);  // the entries stay as they were: visible, not durable
        folder.durable_entries = folder.entries;
        collect();
        REPRISE_ASSERT(inodes.count(*place->target) == 1);
        return {};
    }

    Result<bool> exists(const std::string& raw) const {
        const Path p = parse(raw);
        auto place = lookup(p);
        if (!place.ok() || !place->target)
            return false;  // ENOENT or ENOTDIR, as stat(2)'s
        return !p.trailing_slash || inodes.at(*place->target).folder;
    }

    Result<void> make_directories(const std::string& raw) {
        if (raw.empty())
            return sys(EINVAL);
        const Path p = parse(raw);
        InodeId folder = p.absolute ? root_inode : working_folder_inode;
        for (const std::string& name : p.names) {
            auto& entries = inodes.at(folder).entries;
            if (auto it = entries.find(name); it != entries.end()) {
                if (!inodes.at(it->second).folder)
                    return sys(ENOTDIR);
                folder = it->second;
                continue;
            }
            const InodeId id = next_inode++;
            inodes[id].folder = true;
            inodes.at(folder).entries[name] = id;
            folder = id;
        }
        return {};
    }
};

SimDisk::SimDisk(std::uint64_t seed, DiskFaults faults) : s_(std::make_unique<State>(seed, faults)) {}

SimDisk::~SimDisk() = default;

Result<FileToken> SimDisk::open(const std::string& path, OpenMode mode) {
    return s_->step<FileToken>([&] { return s_->open(path, mode); });
}

void SimDisk::close(FileToken file) noexcept {
    (void)s_->step<void>([&] { return s_->close(file); });
}

Result<std::string> SimDisk::read(FileToken file, std::uint64_t offset, std::size_t max_bytes) {
    return s_->step<std::string>([&] { return s_->read(file, offset, max_bytes); });
}

Result<void> SimDisk::write(FileToken file, std::uint64_t offset, std::string_view bytes) {
    return s_->step<void>([&] { return s_->write(file, offset, bytes); });
}

Result<void> SimDisk::append(FileToken file, std::string_view bytes) {
    return s_->step<void>([&] { return s_->write(file, std::nullopt, bytes); });
}

Result<void> SimDisk::sync(FileToken file) {
    return s_->step<void>([&] { return s_->sync(file); });
}

Result<std::uint64_t> SimDisk::size(FileToken file) {
    return s_->step<std::uint64_t>([&] { return s_->size(file); });
}

Result<void> SimDisk::truncate(FileToken file, std::uint64_t size) {
    return s_->step<void>([&] { return s_->truncate(file, size); });
}

Result<void> SimDisk::rename(const std::string& from, const std::string& to) {
    return s_->step<void>([&] { return s_->rename(from, to); });
}

Result<void> SimDisk::unlink(const std::string& path) {
    return s_->step<void>([&] { return s_->unlink(path); });
}

Result<void> SimDisk::sync_directory(const std::string& path) {
    return s_->step<void>([&] { return s_->sync_directory(path); });
}

Result<bool> SimDisk::exists(const std::string& path) {
    return s_->step<bool>([&] { return s_->exists(path); });
}

Result<void> SimDisk::make_directories(const std::string& path) {
    return s_->step<void>([&] { return s_->make_directories(path); });
}

void SimDisk::crash() {
    std::lock_guard lock(s_->mutex);
    s_->crash();
}

void SimDisk::crash_after_steps(std::uint64_t steps, std::function<void()> on_crash) {
    std::lock_guard lock(s_->mutex);
    s_->crash_countdown = steps;
    s_->on_crash = std::move(on_crash);
}

void SimDisk::cancel_crash() {
    std::lock_guard lock(s_->mutex);
    s_->crash_countdown.reset();
    s_->on_crash = nullptr;
}

void SimDisk::restart() {
    std::lock_guard lock(s_->mutex);
    s_->crashed = false;
}

bool SimDisk::crashed() const noexcept {
    std::lock_guard lock(s_->mutex);
    return s_->crashed;
}

void SimDisk::set_faults(DiskFaults faults) {
    State::check(faults);
    std::lock_guard lock(s_->mutex);
    s_->faults = faults;
}

DiskFaults SimDisk::faults() const {
    std::lock_guard lock(s_->mutex);
    return s_->faults;
}

std::uint64_t SimDisk::steps() const noexcept {
    std::lock_guard lock(s_->mutex);
    return s_->steps;
}

std::map<std::string, std::string> SimDisk::visible_files() const {
    std::lock_guard lock(s_->mutex);
    return s_->files(false);
}

std::map<std::string, std::string> SimDisk::durable_files() const {
    std::lock_guard lock(s_->mutex);
    return s_->files(true);
}

std::uint64_t SimDisk::digest() const {
    std::lock_guard lock(s_->mutex);
    std::string state;
    for (bool durable : {false, true}) {
        put(state, durable ? "durable" : "visible");
        s_->walk(durable, [&](const std::string& path, const Inode& node) {
            put(state, node.folder ? "folder" : "file");
            put(state, path);
            if (!node.folder)
                put(state, durable ? node.durable : node.data);
        });
    }
    return trace::digest64(state);
}

} // namespace reprise::sim
