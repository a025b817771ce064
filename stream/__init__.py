"""The imperative shell of distillguard: Kafka topics, the Faust app, metrics, files and the CLI."""
