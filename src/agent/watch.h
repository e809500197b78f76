// Watches the agent's config paths for changes (inotify).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace tcpshift {

// Watches the config paths: a directory for any change of its files, a file through its
// directory (editors replace files by rename), filtered by name. Kubernetes updates a
// mounted ConfigMap by renaming a new "..data" symlink over the old one: the files keep their
// names (x.yaml -> ..data/x.yaml) and only ..data changes, so that rename is a change of every
// file in the directory.
class ConfigWatch {
   public:
    static Result<ConfigWatch> start(const std::vector<std::string>& paths);
    int fd() const { return fd_.get(); }

    // Drains the events; true when one concerns a watched file.
    bool changed();

   private:
    Fd fd_;
    std::map<int, std::vector<std::string>> watches_;  // "" for a whole directory
};

}  // namespace tcpshift
