namespace Softnet.Telemetry;

/// <summary>
/// The kernel functions each stage mirrors, so Softnet's collapsed stacks and flamegraph read beside `perf record -g`
/// on a host running the same path. A stage's frames depend on its detail (given to <see cref="StageClock.Begin(Stage, int)"/>):
/// which netfilter hook and family, IPv4 or IPv6, the wire or the backlog.
/// </summary>
public static class StageFrames
{
    // ---------------- details ----------------

    /// <summary>Link: the frame the NIC delivered (ice's poll runs __netif_receive_skb_core for it).</summary>
    public const int LinkWire = 0;
    /// <summary>Link: a frame from the backlog (veth, bridge, vxlan, loopback: netif_rx, then process_backlog).</summary>
    public const int LinkBacklog = 1;
    /// <summary>Ip: IPv6 (ipv6_rcv) rather than IPv4 (ip_rcv).</summary>
    public const int Ipv6 = 1;
    /// <summary>Egress: the neighbour output of ip_finish_output2 (IPv4) / ip6_finish_output2 (IPv6), before dev_queue_xmit.</summary>
    public const int EgressNeigh = 1;
    public const int EgressNeigh6 = 2;

    /// <summary>A netfilter stage's detail: the hook (NF_INET_PRE_ROUTING .. NF_INET_POST_ROUTING) and the family.</summary>
    public static int Hook(int hook, bool ipv6) => 1 + hook + (ipv6 ? 8 : 0);

    // ---------------- frames ----------------

    /// <summary>Frames of the NAPI poll of the NIC (ice) down to the driver's receive loop.</summary>
    public static readonly string[] DriverPoll = ["net_rx_action", "__napi_poll", "ice_napi_poll", "ice_clean_rx_irq"];
    /// <summary>GRO's own work, under the driver's loop.</summary>
    public static readonly string[] Gro = ["napi_gro_receive", "dev_gro_receive"];
    /// <summary>From the driver's loop to the protocol demux: GRO passing an skb up (gro_normal_list).</summary>
    public static readonly string[] GroToStack = ["napi_gro_receive", "gro_normal_one", "netif_receive_skb_list_internal", "__netif_receive_skb_list_core"];
    /// <summary>The backlog's NAPI poll (frames a veth, bridge or tunnel passed on with netif_rx).</summary>
    public static readonly string[] Backlog = ["net_rx_action", "__napi_poll", "process_backlog", "__netif_receive_skb"];

    /// <summary>The frames a stage adds under its caller, outermost first.</summary>
    public static string[] Of(Stage stage, int detail) => stage switch
    {
        Stage.Link => ["__netif_receive_skb_core"],
        Stage.Neigh => ["arp_rcv"],
        Stage.Ip => detail == Ipv6 ? ["ipv6_rcv"] : ["ip_rcv"],
        Stage.Egress => detail switch
        {
            EgressNeigh => ["ip_finish_output2", "neigh_output"],
            EgressNeigh6 => ["ip6_finish_output2", "neigh_output"],
            _ => ["__dev_queue_xmit", "dev_hard_start_xmit"],
        },
        Stage.Raw or Stage.Mangle or Stage.Nat or Stage.Filter or Stage.Security or Stage.Conntrack => Netfilter(stage, detail),
        _ => [StageClock.Name(stage)],
    };

    /// <summary>The frame that names the stage in a flamegraph: the hook function a netfilter stage registered
    /// (iptable_filter_hook, ipv4_conntrack_in, nf_nat_ipv4_out ...), else the innermost of <see cref="Of"/>.</summary>
    public static string Signature(Stage stage, int detail = 0)
    {
        var f = Of(stage, detail);
        int hook = Array.IndexOf(f, "nf_hook_slow");
        return hook >= 0 ? f[hook + 1] : f[^1];
    }

    /// <summary>Every frame that may name <paramref name="stage"/>, over all its details.</summary>
    public static IReadOnlySet<string> Signatures(Stage stage)
    {
        var set = new HashSet<string>();
        for (int d = 0; d < StageClock.Details; d++) set.Add(Signature(stage, d));
        return set;
    }

    // NF_HOOK's caller (the okfn context the hook sits in), nf_hook_slow, then the hook function the table or
    // conntrack registered (iptable_filter_hook, ipv4_conntrack_in ...) and what it calls.
    private static string[] Netfilter(Stage stage, int detail)
    {
        bool v6 = detail > 8;
        int hook = detail == 0 ? 0 : (detail - 1) & 7;
        var frames = new List<string>(6);
        string? caller = (hook, v6) switch
        {
            (1, false) => "ip_local_deliver",
            (2, false) => "ip_forward",
            (3, false) => "__ip_local_out",
            (4, false) => "ip_output",
            (1, true) => "ip6_input",
            (2, true) => "ip6_forward",
            (3, true) => "__ip6_local_out",
            (4, true) => "ip6_output",
            _ => null, // PRE_ROUTING runs inside ip_rcv / ipv6_rcv itself
        };
        if (caller is not null) frames.Add(caller);
        frames.Add("nf_hook_slow");
        string fam = v6 ? "ip6table_" : "iptable_";
        string ipt = v6 ? "ip6t_do_table" : "ipt_do_table";
        switch (stage)
        {
            case Stage.Raw: frames.Add(fam + "raw_hook"); frames.Add(ipt); break;
            case Stage.Mangle: frames.Add(fam + "mangle_hook"); frames.Add(ipt); break;
            case Stage.Filter: frames.Add(fam + "filter_hook"); frames.Add(ipt); break;
            case Stage.Security: frames.Add(fam + "security_hook"); frames.Add(ipt); break;
            case Stage.Nat:
                frames.Add((hook, v6) switch
                {
                    (0, false) => "nf_nat_ipv4_pre_routing",
                    (1, false) => "nf_nat_ipv4_local_in",
                    (3, false) => "nf_nat_ipv4_local_fn",
                    (_, false) => "nf_nat_ipv4_out",
                    (0, true) => "nf_nat_ipv6_in",
                    (1, true) => "nf_nat_ipv6_fn",
                    (3, true) => "nf_nat_ipv6_local_fn",
                    (_, true) => "nf_nat_ipv6_out",
                });
                frames.Add("nf_nat_inet_fn");
                break;
            default: // conntrack: in at PRE_ROUTING / LOCAL_OUT, confirm at LOCAL_IN / POST_ROUTING
                if (hook is 0 or 3)
                {
                    frames.Add((hook, v6) switch
                    {
                        (0, false) => "ipv4_conntrack_in",
                        (3, false) => "ipv4_conntrack_local",
                        (0, true) => "ipv6_conntrack_in",
                        _ => "ipv6_conntrack_local",
                    });
                    frames.Add("nf_conntrack_in");
                }
                else frames.Add("nf_confirm");
                break;
        }
        return [.. frames];
    }
}
