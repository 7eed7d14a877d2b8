// Topic names and topic filters (MQTT 5.0 section 4.7, 3.1.1 section 4.7):
// validation, shared-subscription parsing and single-filter matching. The
// broker's TopicTree does the many-filter matching; topic_matches() is the
// reference it is tested against.
#pragma once

#include <optional>
#include <string_view>

namespace petrel::mqtt {

// A PUBLISH topic: no '+' or '#', at most 65535 bytes; empty only when
// `allow_empty` (MQTT 5 with a topic alias).
bool valid_topic_name(std::string_view topic, bool allow_empty = false);

// A subscription filter: '#' only as the whole last level, '+' only as a
// whole level, not empty. `$share/...` filters are checked by parse_shared.
bool valid_topic_filter(std::string_view filter);

struct SharedFilter {
  std::string_view group;
  std::string_view filter;
};

// If `filter` starts with "$share/", splits it into group and filter.
// Returns nullopt for a non-shared filter; throws nothing: an invalid shared
// filter (empty or wildcard group, missing filter) yields a SharedFilter with
// an empty group, which valid_shared_filter() rejects.
std::optional<SharedFilter> parse_shared(std::string_view filter);
bool valid_shared_filter(const SharedFilter& s);

// Whether `topic` matches `filter`. Topics starting with '$' are not matched
// by filters starting with a wildcard.
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace petrel::mqtt
