#include <iostream>

#include "tcpshift/commands.h"

int main(int argc, char** argv) {
    return tcpshift::run_cli(argc, argv, tcpshift::Streams{.out = std::cout, .err = std::cerr});
}
