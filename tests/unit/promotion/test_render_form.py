"""The Resume form as a reviewer sees it: short diff lines, every piece of catalog or user text rendered
literally (checked through a real markdown renderer), refused answers shown, the full plan linked."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from envsteward.catalog import ApprovalPolicy
from envsteward.promotion.approval import Answer, decide, start
from envsteward.promotion.model import Change, PromotionPlan, Skipped
from envsteward.promotion.render import (
    MAX_LINE_CHARS,
    render_approval_description,
    render_diff,
    render_plan_markdown,
)

LONG_PATH = "feature_flags.search_v2.rollout_percent"
PLAN = PromotionPlan(
    source="development",
    target="staging",
    select=("services.**", "feature_flags.**"),
    changes=(
        Change(
            path=LONG_PATH,
            kind="update",
            target_source="feature-flags",
            key_path=("search_v2", "rollout_percent"),
            before=10,
            after=50,
        ),
        Change(
            path="services.api.env",
            kind="create",
            target_source="ssm-services",
            key_path=("api", "env"),
            after="x" * 110,
        ),
    ),
    skipped=(
        Skipped(path="services.api.instances", reason="not selected (select: services.**, feature_flags.**)"),
    ),
    blockers=("tier rule x at a.b [promoted from development live (into vault-app)]: *bold* <b>",),
    approvals_needed=1,
    approvers=("alice", "bob"),
    plan_hash="ab" * 32,
)


def _text(markdown: str) -> str:
    """What a reader sees: the rendered HTML without tags, entities decoded."""
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    text = re.sub(r"<[^>]+>", "", html)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def test_every_diff_line_fits_the_modal_and_each_path_has_its_own_line() -> None:
    diff = render_diff(PLAN)
    body = diff.splitlines()[1:-1]
    assert all(len(line) <= MAX_LINE_CHARS for line in body), max(body, key=len)
    assert f"@@ {LONG_PATH}" in body
    index = body.index(f"@@ {LONG_PATH}")
    assert body[index + 1 : index + 4] == ["   update in feature-flags", "- 10", "+ 50"]
    long_value = "".join(line[2:] for line in body if line.startswith(('+ "x', "  x")))
    assert long_value.count("x") == 110, "a long value is wrapped, not cut"


def test_catalog_and_user_text_is_rendered_literally() -> None:
    shown = _text(render_plan_markdown(PLAN))
    assert "select: services.**, feature_flags.**" in shown  # the "Not promoted" reason
    assert "services.**, feature_flags.**" in shown
    assert "[promoted from development live (into vault-app)]: *bold* <b>" in shown


def test_the_form_shows_refused_answers_and_links_the_full_plan() -> None:
    policy = ApprovalPolicy(approvers=["alice", "bob"], approvals_needed=1, timeout_hours=8)
    state = decide(Answer(decision="approve", reviewer="dave"), policy, "dave", start(policy))
    state = decide(Answer(decision="approve", reviewer="mal_lory*"), policy, "dave", state)
    description = render_approval_description(
        PLAN, state, "dave", "release [1.1]", plan_link="http://127.0.0.1:4200/artifacts/key/promotion-plan-a"
    )
    shown = _text(description)
    assert "dave's approval was refused: dave requested this promotion and cannot approve it" in shown
    assert "mal_lory*'s approval was refused: mal_lory* is not an approver" in shown
    assert "release [1.1]" in shown
    html = MarkdownIt("commonmark").render(description)
    assert 'href="http://127.0.0.1:4200/artifacts/key/promotion-plan-a"' in html
