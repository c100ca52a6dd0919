"""Sends one story through the official, unmodified Segment Python client to a Rapport server.

Usage: segment_python.py BASE_URL WRITE_KEY
"""

import sys
from datetime import datetime, timezone

from segment.analytics import Client

base, write_key = sys.argv[1], sys.argv[2]
errors = []
client = Client(write_key, host=base, upload_interval=0.1, max_retries=2,
                on_error=lambda error, batch: errors.append(repr(error)))

# An anonymous visitor browses, then signs up and is identified.
client.page(anonymous_id="py-anon-1", category="Docs", name="Pricing",
            properties={"url": "https://rapport.example/pricing", "path": "/pricing"}, message_id="py-page-1")
client.track(anonymous_id="py-anon-1", event="Whitepaper Downloaded", properties={"title": "B2B 增长白皮书"},
             message_id="py-track-1")
client.identify(user_id="py-user-1", anonymous_id="py-anon-1",
                traits={"email": "py.user@example.com", "firstName": "Lei", "lastName": "Li", "title": "采购经理",
                        "company": {"name": "示例科技"}, "planType": "pro"},
                message_id="py-identify-1")
client.track(user_id="py-user-1", event="Demo Requested", properties={"seats": 25},
             timestamp=datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc), message_id="py-track-2")
client.group(user_id="py-user-1", group_id="py-company-1",
             traits={"name": "示例科技", "website": "https://www.example-tech.cn", "industry": "制造业"},
             message_id="py-group-1")
# The same person was known by an older id in another system.
client.identify(user_id="py-legacy-7", traits={"email": "legacy@example.com"}, message_id="py-identify-2")
client.alias(previous_id="py-legacy-7", user_id="py-user-1", message_id="py-alias-1")
# A repeated message id is stored once.
client.track(user_id="py-user-1", event="Demo Requested", properties={"seats": 25}, message_id="py-track-2")
client.flush()
client.join()

if errors:
    print("errors: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
print("sent")
