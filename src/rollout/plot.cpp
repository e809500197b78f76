#include "rollout/plot.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tcpshift {

namespace {

constexpr double kWidth = 960, kLeft = 80, kRight = 150, kTop = 110, kPanel = 160, kGap = 50;
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

std::string num(double v) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f", v);
    return text;
}

std::string escaped(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '<') out += "&lt;";
        else if (c == '>') out += "&gt;";
        else if (c == '&') out += "&amp;";
        else if (c == '"') out += "&quot;";
        else out += c;
    }
    return out;
}

// One value per subset at point i: a weight, or a rate over the window that ends at i.
using Series = std::function<std::optional<double>(const std::string& subset, size_t i)>;

class Picture {
   public:
    explicit Picture(const RolloutRecord& r) : r_(r) {
        for (const auto& p : r.timeline)
            for (const auto& [name, w] : p.weights) subsets_.insert(name);
        end_ms_ = std::max<uint64_t>(r.timeline.empty() ? 1 : r.timeline.back().t_ms, 1);
        if (!r.notes.empty()) end_ms_ = std::max(end_ms_, r.notes.back().t_ms);
    }

    std::string draw() {
        const double height = kTop + 3 * (kPanel + kGap) + 20;
        out_ << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << height
             << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
        out_ << "<text x=\"" << kLeft << "\" y=\"22\" font-size=\"15\">" << escaped(title()) << "</text>\n";
        outcome_lines();
        panel(0, "weight (%)", 100, /*stepped=*/true, [&](const std::string& s, size_t i) -> std::optional<double> {
            const auto& w = r_.timeline[i].weights;
            const auto it = w.find(s);
            if (it == w.end()) return std::nullopt;
            uint64_t sum = 0;
            for (const auto& [n, v] : w) sum += v;
            return sum ? 100.0 * it->second / sum : 0;
        });
        draw_rate(1, "failure rate (%)", [](const SubsetFigures& f) -> std::optional<double> {
            if (f.connections == 0) return std::nullopt;
            return 100.0 * f.failure_rate();
        });
        draw_rate(2, "mean RTT (us)", [](const SubsetFigures& f) -> std::optional<double> {
            if (f.rtt_count == 0) return std::nullopt;
            return f.mean_rtt_us();
        });
        legend();
        out_ << "</svg>\n";
        return out_.str();
    }

   private:
    std::string title() const {
        std::string steps;
        for (uint32_t s : r_.spec.steps) steps += (steps.empty() ? "" : ",") + std::to_string(s);
        return "tcpshift rollout " + r_.spec.service + " to " + r_.spec.canary + " (steps " + steps + "%): " +
               phase_name(r_.phase);
    }
    // The outcome under the title, a clause a line.
    void outcome_lines() {
        double y = 42;
        size_t start = 0;
        while (start < r_.outcome.size() && y < kTop - 20) {
            size_t end = r_.outcome.find("; ", start);
            if (end == std::string::npos) end = r_.outcome.size();
            out_ << "<text x=\"" << kLeft << "\" y=\"" << y << "\" fill=\"#444\">"
                 << escaped(r_.outcome.substr(start, end - start)) << "</text>\n";
            start = end + 2;
            y += 16;
        }
    }
    double x(uint64_t t_ms) const { return kLeft + (kWidth - kLeft - kRight) * static_cast<double>(t_ms) / end_ms_; }
    double top(int panel) const { return kTop + panel * (kPanel + kGap); }

    // The figures of subset s over the window of about a tenth of the rollout ending at i.
    std::optional<SubsetFigures> window(const std::string& s, size_t i) const {
        const uint64_t span = std::max<uint64_t>(r_.spec.interval_ms / 3, 1000);
        size_t j = i;
        while (j > 0 && r_.timeline[i].t_ms - r_.timeline[j].t_ms < span) --j;
        if (j == i) return std::nullopt;
        const auto now = r_.timeline[i].totals.find(s), then = r_.timeline[j].totals.find(s);
        if (now == r_.timeline[i].totals.end() || then == r_.timeline[j].totals.end()) return std::nullopt;
        return now->second - then->second;
    }

    void draw_rate(int panel_index, const std::string& label,
                   const std::function<std::optional<double>(const SubsetFigures&)>& value) {
        double max = 0;
        const Series series = [&](const std::string& s, size_t i) -> std::optional<double> {
            const auto f = window(s, i);
            return f ? value(*f) : std::nullopt;
        };
        for (const auto& s : subsets_)
            for (size_t i = 0; i < r_.timeline.size(); ++i) max = std::max(max, series(s, i).value_or(0));
        panel(panel_index, label, max > 0 ? max * 1.15 : 1, false, series);
    }

    // `stepped`: the value holds until the next point (weights), rather than moving linearly.
    void panel(int index, const std::string& label, double max, bool stepped, const Series& series) {
        const double y0 = top(index), y1 = y0 + kPanel;
        out_ << "<rect x=\"" << kLeft << "\" y=\"" << y0 << "\" width=\"" << kWidth - kLeft - kRight << "\" height=\""
             << kPanel << "\" fill=\"none\" stroke=\"#888\"/>\n";
        out_ << "<text x=\"" << kLeft << "\" y=\"" << y0 - 8 << "\" font-weight=\"bold\">" << escaped(label)
             << "</text>\n";
        for (int tick = 0; tick <= 2; ++tick)
            out_ << "<text x=\"" << kLeft - 6 << "\" y=\"" << y1 - tick * kPanel / 2 + 4 << "\" text-anchor=\"end\">"
                 << num(max * tick / 2) << "</text>\n";
        out_ << "<text x=\"" << kLeft << "\" y=\"" << y1 + 16 << "\">0 s</text><text x=\"" << kWidth - kRight
             << "\" y=\"" << y1 + 16 << "\" text-anchor=\"end\">" << num(end_ms_ / 1000.0) << " s</text>\n";
        marks(y0, y1);
        size_t colour = 0;
        for (const auto& s : subsets_) {
            std::string path;
            for (size_t i = 0; i < r_.timeline.size(); ++i) {
                const auto v = series(s, i);
                if (!v) continue;
                const double y = y1 - kPanel * std::min(*v / max, 1.0);
                if (stepped && !path.empty()) path += " H" + num(x(r_.timeline[i].t_ms));
                path += (path.empty() ? "M" : " L") + num(x(r_.timeline[i].t_ms)) + " " + num(y);
            }
            out_ << "<path d=\"" << path << "\" fill=\"none\" stroke-width=\"2\" stroke=\""
                 << kColours[colour++ % std::size(kColours)] << "\"/>\n";
        }
    }

    // A vertical line at each step, pass and end; the end is labelled.
    void marks(double y0, double y1) {
        for (const auto& n : r_.notes) {
            const bool ending = n.kind == "abort" || n.kind == "promote" || n.kind == "stop";
            const char* colour = n.kind == "abort" || n.kind == "stop" ? "#d62728" : n.kind == "promote" ? "#2ca02c" : "#bbb";
            out_ << "<line x1=\"" << num(x(n.t_ms)) << "\" x2=\"" << num(x(n.t_ms)) << "\" y1=\"" << y0 << "\" y2=\"" << y1
                 << "\" stroke=\"" << colour << "\" stroke-dasharray=\"" << (ending ? "6 3" : "2 3") << "\"/>\n";
            if (ending)
                out_ << "<text x=\"" << num(x(n.t_ms) - 4) << "\" y=\"" << y0 + 14 << "\" text-anchor=\"end\" fill=\""
                     << colour << "\">" << n.kind << "</text>\n";
        }
    }

    void legend() {
        size_t colour = 0;
        double y = kTop + 10;
        for (const auto& s : subsets_) {
            const char* c = kColours[colour++ % std::size(kColours)];
            out_ << "<rect x=\"" << kWidth - kRight + 16 << "\" y=\"" << y - 9 << "\" width=\"12\" height=\"12\" fill=\""
                 << c << "\"/><text x=\"" << kWidth - kRight + 34 << "\" y=\"" << y + 1 << "\">" << escaped(s)
                 << (s == r_.spec.canary ? " (canary)" : "") << "</text>\n";
            y += 18;
        }
    }

    const RolloutRecord& r_;
    std::set<std::string> subsets_;
    uint64_t end_ms_ = 1;
    std::ostringstream out_;
};

}  // namespace

std::string rollout_svg(const RolloutRecord& record) { return Picture(record).draw(); }

namespace {

Result<void> write_svg(const std::string& path, const RolloutRecord& record) {
    std::ofstream out(path);
    if (!out) return fail(system_error("open " + path, errno));
    out << rollout_svg(record);
    if (!out.flush()) return fail(system_error("write " + path, errno));
    return {};
}

// Renders the SVG with rsvg-convert (librsvg2-bin), which scripts/setup.sh installs.
Result<void> write_png(const std::string& path, const RolloutRecord& record) {
    const std::string svg = path + ".svg.tmp";
    if (auto ok = write_svg(svg, record); !ok) return ok;
    const char* argv[] = {"rsvg-convert", "--format", "png", "--output", path.c_str(), svg.c_str(), nullptr};
    pid_t pid = 0;
    const int spawned = ::posix_spawnp(&pid, argv[0], nullptr, nullptr, const_cast<char* const*>(argv), environ);
    int status = 0;
    if (spawned == 0)
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    ::unlink(svg.c_str());
    if (spawned != 0)
        return fail(system_error("--plot " + path + ": run rsvg-convert (apt-get install librsvg2-bin), or write .svg",
                                 spawned));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail(system_error("--plot " + path + ": rsvg-convert failed (status " + std::to_string(status) + ")"));
    return {};
}

bool ends_with(const std::string& text, const std::string& end) {
    return text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0;
}

}  // namespace

Result<void> check_plot_path(const std::string& path) {
    if (!ends_with(path, ".svg") && !ends_with(path, ".png"))
        return fail(config_error("--plot " + path + ": name an .svg or a .png file"));
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    if (::access(dir.c_str(), W_OK) != 0) return fail(system_error("--plot " + path + ": cannot write in " + dir, errno));
    return {};
}

Result<void> write_plot(const std::string& path, const RolloutRecord& record) {
    if (ends_with(path, ".svg")) return write_svg(path, record);
    if (ends_with(path, ".png")) return write_png(path, record);
    return fail(config_error("--plot " + path + ": name an .svg or a .png file"));
}

}  // namespace tcpshift
