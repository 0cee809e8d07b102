"""Ids as Tradecloud makes them: ``<company uuid>-<PO number>``, keeping the number's characters."""

from __future__ import annotations

# The form of Tradecloud's SDK example (GetConversationById.cs), where the id shows percent-encoded
# in the URL as ``…-PO-05-%2351388860``.
SDK_ORDER_ID = "f56aa4ce-8d4f-4b6b-9a3a-2f1e0c9d8b7a-PO-05-#51388860"
_COMPANY = "0d3c6c1e-2b7a-4c55-9e11-5a0f3b9c7d21"
ID_SAMPLES = [
    SDK_ORDER_ID,
    f"{_COMPANY}-PO 2025/001",
    f"{_COMPANY}-PO%41",
    f"{_COMPANY}-A&B+C",
    f"{_COMPANY}-Bestellung-é",
    f"{_COMPANY}-注文-漢",
    f"{_COMPANY}-/#%&+ é漢",
    "..",
]
