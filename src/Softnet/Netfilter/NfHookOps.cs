using Softnet.Telemetry;

namespace Softnet.Netfilter;

/// <summary>Protocol families hooks register for (NFPROTO_*).</summary>
public enum NfProto : byte
{
    /// <summary>NFPROTO_UNSPEC: an xtables extension for every family.</summary>
    Unspec = 0,
    Inet = 1,
    Ipv4 = 2,
    Bridge = 7,
    Ipv6 = 10,
}

/// <summary>Hook priorities of the IPv4 family (enum nf_ip_hook_priorities): lower runs first.</summary>
public static class NfPriority
{
    /// <summary>NF_IP_PRI_CONNTRACK_DEFRAG / NF_IP6_PRI_CONNTRACK_DEFRAG: nf_defrag_ipv4 / nf_defrag_ipv6. They hold and
    /// replace skbs, which a <see cref="NfHookFn"/> cannot: the IP paths call them in front of the hook table
    /// (Ipv4Input, <see cref="NfDefragIpv6"/>), where this priority puts them.</summary>
    public const int ConntrackDefrag = -400;
    public const int Raw = -300;
    public const int Conntrack = -200;
    public const int Mangle = -150;
    public const int NatDst = -100;
    public const int Filter = 0;
    public const int Security = 50;
    public const int NatSrc = 100;
    public const int ConntrackConfirm = int.MaxValue;
}

/// <summary>A hook function: NF_ACCEPT lets the packet go on to the next function, NF_DROP ends it.</summary>
public delegate Verdict NfHookFn(NetfilterTables tables, HookPoint hook, ref PacketContext p, Span<byte> packet);

/// <summary>One registered hook function (struct nf_hook_ops): family, hook, priority, and the stage its time is
/// charged to.</summary>
public sealed record NfHookOps(NfProto Pf, HookPoint Hook, int Priority, string Name, Stage Stage, NfHookFn Fn);

/// <summary>The hook functions of one family in one namespace, per hook in priority order (nf_hook_entries);
/// registering keeps each hook's array sorted, as nf_register_net_hook inserts by priority.</summary>
public sealed class NfHookTable
{
    private readonly NfHookOps[][] _entries = new NfHookOps[5][];

    public NfHookTable()
    {
        for (int i = 0; i < _entries.Length; i++) _entries[i] = [];
    }

    public void Register(NfHookOps ops)
    {
        var list = _entries[(int)ops.Hook].ToList();
        int at = list.FindIndex(o => o.Priority > ops.Priority);
        list.Insert(at < 0 ? list.Count : at, ops);
        _entries[(int)ops.Hook] = list.ToArray();
    }

    public void Unregister(Func<NfHookOps, bool> which)
    {
        for (int i = 0; i < _entries.Length; i++) _entries[i] = _entries[i].Where(o => !which(o)).ToArray();
    }

    /// <summary>The functions of <paramref name="hook"/>, in the order they run.</summary>
    public NfHookOps[] Entries(HookPoint hook) => _entries[(int)hook];
}
