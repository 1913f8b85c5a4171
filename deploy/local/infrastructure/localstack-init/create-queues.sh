#!/usr/bin/env bash
# LocalStack ready hook (mounted into /etc/localstack/init/ready.d/): create the scheduler's queue and
# its dead-letter queue with the spec's names, the 30 s visibility timeout and a redrive policy.
# Idempotent: create-queue returns the existing queue, and the attributes are set every time.
# `keeperhub-scheduler queue setup` (the scheduler-queue-setup Job) later sets the same attributes
# from scheduler-env.
set -euo pipefail

QUEUE=keeperhub-workflow-queue
DLQ="$QUEUE-dlq"
MAX_RECEIVE_COUNT=10
VISIBILITY_TIMEOUT=30

dlq_url="$(awslocal sqs create-queue --queue-name "$DLQ" --query QueueUrl --output text)"
awslocal sqs set-queue-attributes --queue-url "$dlq_url" \
  --attributes MessageRetentionPeriod=1209600
dlq_arn="$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)"

queue_url="$(awslocal sqs create-queue --queue-name "$QUEUE" --query QueueUrl --output text)"
redrive="{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$MAX_RECEIVE_COUNT\\\"}"
awslocal sqs set-queue-attributes --queue-url "$queue_url" \
  --attributes "{\"VisibilityTimeout\":\"$VISIBILITY_TIMEOUT\",\"RedrivePolicy\":\"$redrive\"}"

echo "keeperhub-scheduler: queues ready: $queue_url (DLQ $dlq_url)"
