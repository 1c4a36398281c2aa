"""Checks a Slack incoming-webhook body (read from stdin) as Slack would take it, with the Block
Kit models of Slack's own SDK (PyPI slack_sdk): `text` is there, and every block parses into its
model and passes the model's own checks (lengths, required fields, element types).

Prints a JSON summary of what was checked; exits 1 with the reason when the body is not valid."""
import json
import sys

from slack_sdk.models.blocks import Block
from slack_sdk.errors import SlackObjectFormationError


def main():
    body = json.load(sys.stdin)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        sys.exit("no `text`: Slack shows it in notifications and where blocks cannot be shown")
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks:
        sys.exit("no `blocks`")
    if len(blocks) > 50:
        sys.exit(f"{len(blocks)} blocks; a message holds at most 50")
    types = []
    for i, raw in enumerate(blocks):
        block = Block.parse(raw)
        if block is None or type(block) is Block:
            sys.exit(f"block {i} is not a known Block Kit block: {raw}")
        try:
            block.validate_json()
        except SlackObjectFormationError as e:
            sys.exit(f"block {i} ({raw.get('type')}) is refused by slack_sdk: {e}")
        # What the model writes back is what was sent: nothing was dropped as unknown.
        if block.to_dict() != raw:
            sys.exit(f"block {i} does not round-trip through slack_sdk: {raw} != {block.to_dict()}")
        types.append(raw["type"])
    print(json.dumps({"text": text, "types": types}))


if __name__ == "__main__":
    main()
