using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m udp (xt_tcpudp.c udp_mt): ports.</summary>
public sealed class UdpMatch : XtMatch
{
    internal override bool IsPure => true;
    public ushort SrcMin, SrcMax = 65535, DstMin, DstMax = 65535;
    public bool InvSrc, InvDst;
    internal bool HasSrc, HasDst;

    /// <summary>True when the match is exactly one destination port (--dport P, not inverted): an index key.</summary>
    internal bool ExactDstPort(out ushort port)
    {
        port = DstMin;
        return HasDst && !InvDst && DstMin == DstMax;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        if (HasSrc && ((p.SrcPort >= SrcMin && p.SrcPort <= SrcMax) == InvSrc)) return false;
        if (HasDst && ((p.DstPort >= DstMin && p.DstPort <= DstMax) == InvDst)) return false;
        return true;
    }
}

/// <summary>Userspace half of -m udp (libxt_udp.c).</summary>
internal sealed class UdpMatchExtension : XtMatchExtension<UdpMatch>
{
    public override string Name => "udp";

    internal override bool Parse(UdpMatch m, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--sport" or "--source-port":
                if (m.HasSrc) throw a.Error("multiple --sport flags not allowed");
                (m.SrcMin, m.SrcMax) = Opt.PortRange(a.Next(option), a); m.InvSrc = invert; m.HasSrc = true; return true;
            case "--dport" or "--destination-port":
                if (m.HasDst) throw a.Error("multiple --dport flags not allowed");
                (m.DstMin, m.DstMax) = Opt.PortRange(a.Next(option), a); m.InvDst = invert; m.HasDst = true; return true;
        }
        return false;
    }

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
        TcpMatchExtension.NftPorts(ref m.HasSrc, ref m.SrcMin, ref m.SrcMax, ref m.InvSrc);
        TcpMatchExtension.NftPorts(ref m.HasDst, ref m.DstMin, ref m.DstMax, ref m.InvDst);
        if (!m.HasSrc && !m.HasDst) m.Elided = true;
    }

    internal override void Save(UdpMatch m, StringBuilder sb)
    {
        if (m.HasSrc) sb.Append(m.InvSrc ? " ! --sport " : " --sport ").Append(Opt.PortText(m.SrcMin, m.SrcMax));
        if (m.HasDst) sb.Append(m.InvDst ? " ! --dport " : " --dport ").Append(Opt.PortText(m.DstMin, m.DstMax));
    }

    internal override void List(UdpMatch m, StringBuilder sb)
    {
        sb.Append(" udp");
        if (m.HasSrc) TcpMatchExtension.ListPorts(sb, "spt", m.SrcMin, m.SrcMax, m.InvSrc);
        if (m.HasDst) TcpMatchExtension.ListPorts(sb, "dpt", m.DstMin, m.DstMax, m.InvDst);
    }
}
