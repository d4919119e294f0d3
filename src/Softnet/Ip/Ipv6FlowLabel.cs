using System.Numerics;
using Softnet.Link;

namespace Softnet.Ip;

/// <summary>
/// The flow label of a datagram this host builds (ip6_make_flowlabel): with net.ipv6.auto_flowlabels 1 (the default)
/// or 3 a socket that set no label of its own gets one from the flow's hash, turned (rol32 by 16) and cut to 20 bits,
/// with the top bit set when net.ipv6.flowlabel_state_ranges is on; 0 and 2 (opt-in: none of Softnet's sockets opts
/// in) leave 0. The kernel's hash is keyed per boot (a connection's random txhash, flow_dissector's hashrnd), so only
/// zero or not and the stability per flow can match it; Softnet hashes the flow with a fixed key.
/// </summary>
public static class Ipv6FlowLabel
{
    /// <summary>The namespace's two keys, re-read when a sysctl changed.</summary>
    internal struct Conf
    {
        public int Version, Auto;
        public bool StateRanges;
    }

    /// <summary>The label for a datagram from <paramref name="saddr"/> to <paramref name="daddr"/> of
    /// <paramref name="proto"/>, <paramref name="ports"/> the source and destination ports (ICMPv6: type and code),
    /// as the flowi6 the kernel hashes holds them.</summary>
    public static uint Make(Namespace ns, UInt128 saddr, UInt128 daddr, byte proto, uint ports)
    {
        ref var c = ref ns.FlowLabelConf;
        if (c.Version != ns.Sysctls.Version + 1)
        {
            c.Auto = ns.SysctlValue("net.ipv6.auto_flowlabels", 1);
            c.StateRanges = ns.SysctlValue("net.ipv6.flowlabel_state_ranges", 0) != 0;
            c.Version = ns.Sysctls.Version + 1;
        }
        // IP6_AUTO_FLOW_LABEL_OFF and IP6_AUTO_FLOW_LABEL_OPTIN: ip6_default_np_autolabel is false.
        if (c.Auto is 0 or 2) return 0;
        uint label = BitOperations.RotateLeft(Hash(saddr, daddr, proto, ports), 16) & 0xFFFFF;
        return c.StateRanges ? label | 0x80000 : label;
    }

    /// <summary>Writes <paramref name="label"/> into the IPv6 header at <paramref name="ip6"/>'s start.</summary>
    public static void Write(Span<byte> ip6, uint label)
    {
        ip6[1] = (byte)((ip6[1] & 0xF0u) | ((label >> 16) & 0x0Fu));
        ip6[2] = (byte)(label >> 8);
        ip6[3] = (byte)label;
    }

    /// <summary>ICMPv6's flowi6 ports: the type and code (fl6_icmp_type, fl6_icmp_code).</summary>
    public static uint IcmpPorts(byte type, byte code) => (uint)type << 8 | code;

    /// <summary>A fixed-key mix of the flow (the kernel's __flow_hash_from_keys with its per-boot key); never 0.</summary>
    private static uint Hash(UInt128 saddr, UInt128 daddr, byte proto, uint ports)
    {
        ulong h = 0x9E37_79B9_7F4A_7C15UL ^ proto;
        h = Mix(h ^ (ulong)saddr);
        h = Mix(h ^ (ulong)(saddr >> 64));
        h = Mix(h ^ (ulong)daddr);
        h = Mix(h ^ (ulong)(daddr >> 64));
        h = Mix(h ^ ports);
        uint r = (uint)(h ^ (h >> 32));
        return r == 0 ? 1 : r;
    }

    private static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xff51_afd7_ed55_8ccdUL;
        x ^= x >> 33;
        x *= 0xc4ce_b9fe_1a85_ec53UL;
        return x ^ (x >> 33);
    }
}
