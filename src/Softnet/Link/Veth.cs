using Softnet.Packets;

namespace Softnet.Link;

/// <summary>veth (drivers/net/veth.c): what one end transmits, the peer receives through the backlog.</summary>
public sealed class VethLink : LinkKind
{
    public override string Name => "veth";

    /// <summary>A veth has carrier only while its peer is up.</summary>
    public override bool HasCarrier(Device dev) => dev.Peer is { Up: true };

    /// <summary>veth_xmit → __dev_forward_skb: the peer must be up and the frame fit its MTU (a GSO skb always
    /// fits: is_skb_forwardable); skb_scrub_packet clears what must not cross namespaces; netif_rx on the peer.</summary>
    public override DropReason Xmit(NetStack stack, Device dev, Skb skb)
    {
        var peer = dev.Peer;
        if (peer is null)
        {
            // The peer end was bound to a real interface (softnet run --bind): this end has no carrier.
            dev.TxDropped++;
            skb.Free();
            return DropReason.VethPeerDown;
        }
        if (!peer.Up || (!skb.IsGso && skb.Len > peer.Mtu + 14 + 4))
        {
            dev.TxDropped++;
            peer.RxDropped++;
            skb.Free();
            return DropReason.VethPeerDown;
        }
        NetStack.ScrubPacket(skb, xnet: peer.Namespace != dev.Namespace);
        stack.NetifRx(peer, skb);
        return DropReason.None;
    }
}
