"""The gateway side: a client library for the throttle topic and a reference HTTP gateway."""
