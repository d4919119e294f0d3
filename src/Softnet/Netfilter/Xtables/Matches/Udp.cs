using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m udp (xt_tcpudp.c udp_mt): ports.</summary>
public sealed class UdpMatch : PortsMatch
{
    internal override byte L4Protocol => IpProtocols.Udp;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => PortsHold(ref p);
}

/// <summary>Userspace half of -m udp (libxt_udp.c).</summary>
internal sealed class UdpMatchExtension : XtMatchExtension<UdpMatch>
{
    public override string Name => "udp";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal override bool Parse(UdpMatch m, string option, bool invert, ArgReader a) => m.ParsePorts(option, invert, a);

    internal override void FinalCheck(UdpMatch m, Rule rule, ArgReader a)
    {
        if (rule.Protocol != 17 || rule.InvProtocol) throw a.Error("UDP match requires '-p udp'");
        // iptables-nft (add_nft_udp): as for tcp, a non-default match becomes nft port comparisons.
        bool allZero = (!m.HasSrc || (m.SrcMin == 0 && m.SrcMax == 65535 && !m.InvSrc)) && (!m.HasDst || (m.DstMin == 0 && m.DstMax == 65535 && !m.InvDst));
        if (allZero)
        {
            m.HasSrc = m.HasDst = false;
            return;
        }
        m.NftPorts();
        if (!m.HasSrc && !m.HasDst) m.Elided = true;
    }

    internal override void Save(UdpMatch m, StringBuilder sb)
    {
        m.SavePorts(sb);
    }

    internal override void List(UdpMatch m, StringBuilder sb)
    {
        sb.Append(" udp");
        m.ListPorts(sb);
    }
}
