using Softnet.Topology;

namespace Softnet.KernelTests.Support;

/// <summary>A scenario written by a test, run through the kernel (<see cref="KernelScenario"/>) and through Softnet
/// (<see cref="ScenarioReplay"/>) on the same capture, under bin/.../scenario-runs/TAG/{scenario,kernel,softnet}.</summary>
public static class ScenarioPair
{
    /// <summary>Writes <paramref name="text"/> to <paramref name="file"/> under <paramref name="root"/>.</summary>
    public static void Write(string root, string file, string text)
    {
        string path = Path.Combine(root, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    /// <summary>Builds the scenario with <paramref name="build"/> (given its folder), writes <paramref name="traffic"/>,
    /// runs both with the frames injected at <paramref name="inject"/>; returns the two dump folders.</summary>
    public static (string Kernel, string Softnet) Run(string tag, Action<string> build, ScenarioCapture traffic, string inject)
    {
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", tag);
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        build(scn);
        traffic.Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, inject, kernel);
        ScenarioReplay.Run(scn, capture, inject, softnet);
        return (kernel, softnet);
    }
}
