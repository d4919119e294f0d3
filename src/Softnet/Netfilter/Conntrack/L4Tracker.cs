using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>
/// A transport protocol's conntrack half (struct nf_conntrack_l4proto, found by nf_ct_l4proto_find): its packet
/// function, run by nf_conntrack_in once the lookup found or made the entry. Adding a tracker is adding a subclass;
/// TCP, UDP and ICMP stay in the core's dispatch beside the checksum tests they share. Used for both families.
/// </summary>
internal abstract class L4Tracker
{
    /// <summary>The IP protocol number this tracker takes.</summary>
    public abstract byte Protocol { get; }

    /// <summary>The l4proto's packet function on <paramref name="l4"/> (the transport header to the datagram's end, as
    /// much of it as the linear bytes hold; empty when the caller has none). Returns a verdict of
    /// <see cref="ConntrackTable"/> (accept, accept unrefreshed, invalid, drop, repeat lookup); never throws.</summary>
    public abstract int Packet(Connection ct, ref PacketContext p, ReadOnlySpan<byte> l4, int dir, long now, ConntrackOptions o, HookPoint hook);

    private static L4Tracker?[]? _byProtocol;

    /// <summary>nf_ct_l4proto_find: the registered tracker of <paramref name="protocol"/>, or null (the generic one).</summary>
    public static L4Tracker? Find(byte protocol) => (_byProtocol ??= Build())[protocol];

    private static L4Tracker?[] Build()
    {
        var table = new L4Tracker?[256];
        foreach (var t in Link.Registry.Instances<L4Tracker>())
        {
            if (table[t.Protocol] != null) throw new InvalidOperationException($"two conntrack trackers for IP protocol {t.Protocol}");
            table[t.Protocol] = t;
        }
        return table;
    }
}
