// The command line: argv in, a verb run, an error out. Only main() turns the error into an
// exit status, with exit_status().
#pragma once

#include "base/error.h"
#include "base/streams.h"

namespace tcpshift {

// Parses argv and runs the verb it names. Help prints on io.out and succeeds.
Result<void> run_cli(int argc, const char* const* argv, Streams io);

// Prints an error as one line on `err` ("tcpshift: ...") and returns the exit status:
// 0 done, 1 the system refused or verify found a difference, 2 usage or configuration.
int exit_status(const Result<void>& result, std::ostream& err);

}  // namespace tcpshift
