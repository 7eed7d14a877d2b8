#include "broker/stats.hpp"
