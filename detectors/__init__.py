"""Pure detection logic for distillguard: no Kafka, Faust or clock, so worker, replay and tests agree."""
