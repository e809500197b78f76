#include <exception>
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
    // Every expected failure is a Result. An exception reaching here is a bug (the fuzz
    // targets hunt for them); it still ends in one line and exit 1, not an abort.
    try {
        const auto result = tcpshift::run_cli(argc, argv, tcpshift::Streams{.out = std::cout, .err = std::cerr});
        return tcpshift::exit_status(result, std::cerr);
    } catch (const std::exception& e) {
        std::cerr << "tcpshift: internal error: " << e.what() << "; please report it with the input that caused it\n";
    } catch (...) {
        std::cerr << "tcpshift: internal error: unknown exception; please report it with the input that caused it\n";
    }
    return 1;
}
