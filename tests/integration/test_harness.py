"""The integration harness itself: real users talking through the test Synapse."""

import pytest

from tests.integration.matrix_user import MatrixUserFactory

pytestmark = pytest.mark.integration


async def test_invitee_sees_inviter_joins_and_receives_message(
    matrix_user: MatrixUserFactory,
) -> None:
    alice = await matrix_user("alice")
    bob = await matrix_user("bob")

    room_id = await alice.create_dm(bob.user_id)
    invite = await bob.wait_for_invite(predicate=lambda invite: invite.room_id == room_id)
    await bob.join(room_id)
    await alice.wait_for_membership(room_id, bob.user_id, "join")
    await alice.send_text(room_id, "hello bob")

    assert invite.sender == alice.user_id
    assert await bob.wait_for_message(room_id) == (alice.user_id, "hello bob")
    assert await bob.membership_of(room_id) == "join"


async def test_presence_is_visible_to_a_user_sharing_a_room(
    matrix_user: MatrixUserFactory,
) -> None:
    alice = await matrix_user("alice")
    bob = await matrix_user("bob")
    room_id = await alice.create_dm(bob.user_id)
    await bob.wait_for_invite()
    await bob.join(room_id)

    await bob.set_presence("unavailable", "in a meeting")
    presence = await alice.get_presence(bob.user_id)

    assert (presence.presence, presence.status_msg) == ("unavailable", "in a meeting")
