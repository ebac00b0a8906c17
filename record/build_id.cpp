// Reads the main executable's build-id note from its loaded program headers.
#include "reprise/record/internal/build_id.hpp"

#include <cstring>
#include <elf.h>
#include <fmt/core.h>
#include <link.h>

namespace reprise::detail {

std::string executable_build_id() {
    std::string id;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* out) -> int {
            // The first object is the main executable.
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_NOTE)
                    continue;
                const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
                const char* end = p + ph.p_memsz;
                while (p + sizeof(ElfW(Nhdr)) <= end) {
                    const auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
                    const char* name = p + sizeof(ElfW(Nhdr));
                    const char* desc = name + ((n->n_namesz + 3) & ~3u);
                    if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
                        auto* s = static_cast<std::string*>(out);
                        for (unsigned k = 0; k < n->n_descsz; ++k)
                            *s += fmt::format("{:02x}", static_cast<unsigned char>(desc[k]));
                        return 1;
                    }
                    p = desc + ((n->n_descsz + 3) & ~3u);
                }
            }
            return 1;
        },
        &id);
    return id;
}

} // namespace reprise::detail
