// Compiled only by the layering test: a file of the config layer that includes the CLI, a
// layer above it. The build must refuse it.
#include "cli/cli.h"
