"""The demo company gets a sandbox account for every channel kind and valid templates."""

from connectors.demo import demo_channels_load
from connectors.models import ChannelAccount, MessageTemplate
from connectors.protocol import Channel
from connectors.templating import body_problems


def test_demo_channels_cover_every_kind_once_and_their_templates_are_valid(db):
    demo_channels_load()
    demo_channels_load()
    assert set(ChannelAccount.objects.values_list("channel", flat=True)) == set(Channel.LABELS)
    assert ChannelAccount.objects.count() == len(Channel.LABELS)
    for template in MessageTemplate.objects.all():
        assert body_problems(channel=template.channel, body=template.body) == {}, template.key
