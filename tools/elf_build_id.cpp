// The GNU build id of an ELF file: its program headers, then the notes of each PT_NOTE segment, every offset checked against the size.
#include "elf_build_id.hpp"

#include <fmt/core.h>

#include <elf.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace reprise::tool {

namespace {

// Bounds: a real executable has tens of program headers and notes of a few dozen bytes.
constexpr std::uint64_t program_headers_max = 4096;
constexpr std::uint64_t note_segment_bytes_max = 1 << 20;

// Program headers of one ELF class, then the notes of its PT_NOTE segments.
template <class Ehdr, class Phdr, class Nhdr>
bool scan(std::uint64_t size, const ReadAt& read_at, std::string& id, std::string& why) {
    Ehdr eh{};
    if (!read_at(0, &eh, sizeof eh)) {
        why = "a cut ELF header";
        return false;
    }
    if (eh.e_phnum == 0)
        return true;  // no program headers: no build id (an object file, not a program)
    if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum > program_headers_max) {
        why = fmt::format("unexpected program headers ({} of {} bytes)", eh.e_phnum, eh.e_phentsize);
        return false;
    }
    if (eh.e_phoff > size || eh.e_phnum * sizeof(Phdr) > size - eh.e_phoff) {
        why = "the program headers lie outside the file";
        return false;
    }
    for (std::uint64_t i = 0; i < eh.e_phnum; ++i) {
        Phdr ph{};
        if (!read_at(eh.e_phoff + i * sizeof(Phdr), &ph, sizeof ph)) {
            why = fmt::format("program header {} lies outside the file", i);
            return false;
        }
        if (ph.p_type != PT_NOTE)
            continue;
        if (ph.p_filesz > note_segment_bytes_max || ph.p_offset > size || ph.p_filesz > size - ph.p_offset) {
            why = fmt::format("note segment {} ({} bytes at {}) lies outside the file or is too large", i,
                              static_cast<std::uint64_t>(ph.p_filesz), static_cast<std::uint64_t>(ph.p_offset));
            return false;
        }
        std::string notes(ph.p_filesz, '\0');
        if (!read_at(ph.p_offset, notes.data(), notes.size())) {
            why = fmt::format("note segment {} cannot be read", i);
            return false;
        }
        for (std::uint64_t at = 0; at + sizeof(Nhdr) <= notes.size();) {
            Nhdr nh{};
            std::memcpy(&nh, notes.data() + at, sizeof nh);
            const std::uint64_t name_at = at + sizeof nh;
            const std::uint64_t desc_at = name_at + ((static_cast<std::uint64_t>(nh.n_namesz) + 3) & ~std::uint64_t{3});
            if (desc_at > notes.size() || nh.n_descsz > notes.size() - desc_at)
                break;  // a cut note ends the segment
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
                id.clear();
                for (std::uint64_t k = 0; k < nh.n_descsz; ++k)
                    id += fmt::format("{:02x}", static_cast<unsigned char>(notes[desc_at + k]));
                return true;
            }
            at = desc_at + ((static_cast<std::uint64_t>(nh.n_descsz) + 3) & ~std::uint64_t{3});
        }
    }
    return true;
}

} // namespace

bool elf_build_id(std::uint64_t size, const ReadAt& read_at, std::string& id, std::string& why) {
    id.clear();
    unsigned char ident[EI_NIDENT] = {};
    if (!read_at(0, ident, sizeof ident) || std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
        why = "not an ELF file";
        return false;
    }
    if (ident[EI_DATA] != ELFDATA2LSB) {
        why = "a big-endian ELF file (little-endian ones are read)";
        return false;
    }
    if (ident[EI_CLASS] == ELFCLASS64)
        return scan<Elf64_Ehdr, Elf64_Phdr, Elf64_Nhdr>(size, read_at, id, why);
    if (ident[EI_CLASS] == ELFCLASS32)
        return scan<Elf32_Ehdr, Elf32_Phdr, Elf32_Nhdr>(size, read_at, id, why);
    why = fmt::format("an ELF file of unknown class {}", ident[EI_CLASS]);
    return false;
}

bool elf_build_id(const std::string& path, std::string& id, std::string& why) {
    std::error_code ec;
    const std::uint64_t size = std::filesystem::file_size(path, ec);
    if (ec) {
        why = fmt::format("{}: {}", path, ec.message());
        return false;
    }
    std::FILE* f = std::fopen(path.c_str(), "rb");  // reprise-allow: io (a command line tool, not a program on the runtime)
    if (f == nullptr) {
        why = fmt::format("{}: {}", path, std::strerror(errno));
        return false;
    }
    const ReadAt read_at = [&](std::uint64_t offset, void* out, std::uint64_t bytes) {
        return offset <= size && bytes <= size - offset && std::fseek(f, static_cast<long>(offset), SEEK_SET) == 0 &&
               std::fread(out, 1, bytes, f) == bytes;
    };
    const bool ok = elf_build_id(size, read_at, id, why);
    std::fclose(f);
    if (!ok)
        why = fmt::format("{}: {}", path, why);
    return ok;
}

} // namespace reprise::tool
