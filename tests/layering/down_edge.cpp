// Compiled only by the layering test, as the control for back_edge.cpp: a file of the config
// layer that includes the layer below it builds.
#include "base/error.h"
