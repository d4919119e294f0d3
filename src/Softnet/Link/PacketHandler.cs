using Softnet.Packets;

namespace Softnet.Link;

/// <summary>
/// A protocol handler for one EtherType (struct packet_type, registered with dev_add_pack): __netif_receive_skb_core
/// hands it every frame of that type, with data at the network header. Every concrete subclass in the assembly is
/// registered once, so IPv6 or a tunnel is a new file.
/// </summary>
public abstract class PacketHandler
{
    public abstract ushort EtherType { get; }

    /// <summary>The stage the handler's time is charged to.</summary>
    public virtual Telemetry.Stage Stage => Telemetry.Stage.Ip;

    /// <summary>The handler owns <paramref name="skb"/> (frees, forwards or queues it). <paramref name="nfSlot"/> is
    /// a netfilter context br_netfilter already filled for this frame (see <see cref="NetStack.NfSlot"/>), or -1.</summary>
    public abstract void Receive(NetStack stack, Device dev, Skb skb, int nfSlot);

    // A handful of handlers: a linear scan of an array beats a hash lookup (ptype_base is a short list too).
    private static PacketHandler[]? _handlers;

    public static PacketHandler? Find(ushort etherType)
    {
        var all = _handlers ??= Registry.Instances<PacketHandler>().ToArray();
        foreach (var h in all)
            if (h.EtherType == etherType) return h;
        return null;
    }
}
