// The agent's log: one event per line, time, level and message, from any thread.
#pragma once

#include <chrono>
#include <ctime>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <string>

#include "apply/transaction.h"

namespace tcpshift {

class Log {
   public:
    explicit Log(std::ostream& out) : out_(out) {}
    void operator()(const char* level, const std::string& message) {
        const auto now = std::chrono::system_clock::now();
        const std::time_t t = std::chrono::system_clock::to_time_t(now);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char stamp[32];
        std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        std::lock_guard lock(mutex_);
        out_ << stamp << "." << std::setw(3) << std::setfill('0') << ms << "Z " << level << " " << message
             << std::endl;
    }

   private:
    std::ostream& out_;
    std::mutex mutex_;
};

// A transaction's progress as log lines: warnings at level warn, the rest at info.
inline Progress log_progress(Log& log) {
    return [&log](const Event& event) { log(event.kind == Event::Kind::kWarning ? "warn" : "info", event.text); };
}

}  // namespace tcpshift
