using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>
/// vxlan_gro_receive / vxlan_gro_complete (drivers/net/vxlan/vxlan_core.c): the GRO handler a VXLAN socket registers
/// for its UDP port. The 8-byte VXLAN header is stepped over and compared whole with the held packets' (flags and
/// VNI: another VNI is another flow), then the inner Ethernet frame goes through eth_gro_receive and on to the inner
/// IPv4/IPv6 and TCP handlers, so a run of encapsulated segments of one inner flow merges into one skb. Remote
/// checksum offload (VXLAN_HF_RCO with REMCSUM_RX) is not modelled: such a header is compared like any other.
/// </summary>
public sealed class VxlanGro : UdpTunnelGro
{
    public const int HeaderLength = 8;

    /// <summary>The handler every VXLAN socket registers (it keeps no state of its own).</summary>
    public static readonly VxlanGro Instance = new();

    private VxlanGro() { }

    public override string Name => "vxlan";

    /// <summary>vxlan_gro_prepare_receive, then eth_gro_receive on the inner frame.</summary>
    internal override unsafe Skb? Receive(GroEngine e, GroBucket bucket, Skb skb)
    {
        int off = skb.Gro.DataOffset;
        if (!GroEngine.MayPull(skb, off + HeaderLength))
        {
            e.NoteNormal(GroNormalReason.Truncated);
            skb.Gro.Flush |= 1;
            return null;
        }
        byte* vh = skb.DataAddress + off;
        GroEngine.PostPullRcsum(skb, new ReadOnlySpan<byte>(vh, HeaderLength));
        skb.Gro.DataOffset += HeaderLength;
        ulong header = GroEngine.Raw64(vh);
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            if (GroEngine.Raw64(p.DataAddress + off) != header) p.Gro.SameFlow = false;
        }
        return EthGro.Receive(e, bucket, skb);
    }

    /// <summary>vxlan_gro_complete: eth_gro_complete past the VXLAN header (which records the inner MAC header,
    /// skb->encapsulation being set).</summary>
    internal override bool Complete(Skb skb, int nhoff) => EthGro.Complete(skb, nhoff + HeaderLength);
}
