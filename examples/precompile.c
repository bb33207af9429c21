/* precompile: builds a deployment archive for a model preset or model file,
 * so that production machines run with no compiler at all (see embed.c).
 *
 *   ./build/examples/precompile PRESET|MODEL.lua OUT.mfa [ARCH] [THREADS]
 *   ./build/examples/precompile deepseek-v3 deepseek-v3.mfa sm_90a
 * Enumerates every kernel the layer's forward launches over the model's token
 * range (exactly what the runtime's heuristics pick), compiles the ones the
 * cache lacks in parallel (progress on a terminal) and packs cubins + PTX.
 * Needs NVRTC, not a GPU. Presets: deepseek-v3, qwen3-235b-a22b,
 * qwen3-30b-a3b, mixtral-8x7b.
 */
#include <moeforge_gen.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: precompile PRESET|MODEL.lua OUT.mfa [ARCH] [THREADS]\n");
        return 2;
    }
    const char *arch = argc > 3 ? argv[3] : "sm_90a";
    int threads = argc > 4 ? atoi(argv[4]) : 0;
    size_t kernels = 0;
    mf_status s = mf_gen_precompile(argv[1], arch, threads, argv[2], &kernels);
    if (s != MF_OK) {
        fprintf(stderr, "precompile: %s: %s\n", mf_status_string(s), mf_last_error());
        return 1;
    }
    printf("precompile: %zu kernels of %s for %s in %s\n", kernels, argv[1], arch, argv[2]);
    return 0;
}
