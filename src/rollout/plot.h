// The timeline of a rollout as an SVG picture: each subset's weight, failure rate and mean RTT
// over time, with its steps, passes, and its abort or promotion marked.
#pragma once

#include <string>

#include "base/error.h"
#include "rollout/record.h"

namespace tcpshift {

std::string rollout_svg(const RolloutRecord& record);
// Refuses, before a rollout starts, a path write_plot() could not write: another extension, or
// a directory that does not exist.
Result<void> check_plot_path(const std::string& path);
// Writes rollout_svg() to `path`: an .svg as it is, a .png rendered by rsvg-convert.
Result<void> write_plot(const std::string& path, const RolloutRecord& record);

}  // namespace tcpshift
