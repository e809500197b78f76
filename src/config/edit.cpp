#include "config/edit.h"

#include <charconv>

#include "config/yaml_fields.h"

namespace tcpshift {

Result<std::pair<std::string, uint32_t>> parse_weight_assignment(const std::string& arg) {
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
        return fail(config_error("set: \"" + arg + "\" is not SUBSET=WEIGHT, e.g. v1=20"));
    const std::string subset = arg.substr(0, eq), value = arg.substr(eq + 1);
    auto weight = scalar_weight(YAML::Node(value), "set", subset);
    if (!weight)
        return fail(config_error("set: " + subset + ": weight \"" + value +
                                 "\" must be an integer from 0 to 1000000"));
    return std::pair{subset, *weight};
}

Result<void> set_weight(Resource& resource, const std::vector<std::string>& path, uint32_t weight) {
    const auto broken = [&] {
        return fail(config_error(resource.key().str() + ": no weight field at the path compiling recorded"));
    };
    if (path.empty()) return broken();
    YAML::Node node = resource.node;
    for (size_t i = 0; i + 1 < path.size(); ++i) {
        if (node.IsSequence()) {
            size_t index = 0;
            const auto& step = path[i];
            if (std::from_chars(step.data(), step.data() + step.size(), index).ec != std::errc{} ||
                index >= node.size())
                return broken();
            node.reset(node[index]);
        } else if (node.IsMap() && node[path[i]]) {
            node.reset(node[path[i]]);
        } else {
            return broken();
        }
    }
    node[path.back()] = weight;
    return {};
}

}  // namespace tcpshift
