#include "client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "base/fd.h"

#include <httplib.h>

#include <sstream>

namespace tcpshift::testing {

Endpoint endpoint(const std::string& text) {
    auto ep = parse_endpoint(text);
    if (!ep) std::abort();
    return *ep;
}

std::string Tally::str() const {
    std::string s;
    for (const auto& [prefix, count] : by_prefix) s += prefix + "=" + std::to_string(count) + " ";
    s += "failures=" + std::to_string(failures);
    for (const auto& e : first_errors) s += " [" + e + "]";
    return s;
}

HttpReply http_get(int port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    auto res = client.Get(path);
    if (!res) return {};
    return HttpReply{.status = res->status, .body = res->body};
}

double metric_value(const std::string& text, const std::string& series) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

int free_port() {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss;
    socklen_t len = to_sockaddr(endpoint("127.0.0.1:1"), &ss);
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = 0;
    ::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

namespace {

Tally tally_with(size_t n, const std::function<EchoResult(size_t)>& once) {
    Tally t;
    for (size_t i = 0; i < n; ++i) {
        const EchoResult r = once(i);
        if (!r.ok) {
            ++t.failures;
            if (t.first_errors.size() < 5) t.first_errors.push_back(r.error);
            continue;
        }
        ++t.by_prefix[r.reply.substr(0, r.reply.find(' '))];
    }
    return t;
}

}  // namespace

Tally tally(const Endpoint& target, size_t n, std::chrono::milliseconds timeout) {
    return tally_with(n, [&](size_t) { return echo_once(target, "hello", timeout); });
}

Tally tally_from_many_sources(const Endpoint& target, size_t n, std::chrono::milliseconds timeout) {
    return tally_with(n, [&](size_t i) {
        const Endpoint source = *parse_address("127." + std::to_string(1 + i / 62500 % 254) + "." +
                                                   std::to_string(i / 250 % 250) + "." + std::to_string(i % 250 + 1),
                                               0);
        return echo_once(target, "hello", timeout, &source);
    });
}

}  // namespace tcpshift::testing
